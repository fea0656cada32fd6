"""``driftline profile`` and ``driftline drift``: outputs, exit codes and error messages.

Covers: exit 0 on the quickstart's unshifted traffic, 1 on the shifted traffic (the shifted
features named), 2 with a message naming the missing file / column / bad option, 3 for too
few rows; the JSON verdict shape; a self-contained HTML report; a profile file used as the
reference gives the same verdict as the raw reference.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from driftline.operator.cli import driftline


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(driftline, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_unshifted_traffic_exits_0(churn_data: Path) -> None:
    code, out, _ = _run(
        "drift", "--reference", str(churn_data / "reference.csv"),
        "--current", str(churn_data / "traffic.csv"), "--exclude", "label",
    )  # fmt: skip
    assert code == 0, out
    assert out.splitlines()[-1].startswith("no_drift: 0 drifted")


def test_shifted_traffic_exits_1_and_names_the_features(churn_data: Path) -> None:
    code, out, _ = _run(
        "drift", "--reference", str(churn_data / "reference.csv"),
        "--current", str(churn_data / "traffic-shifted.csv"), "--exclude", "label",
        "--json",
    )  # fmt: skip
    assert code == 1
    doc = json.loads(out)
    verdict = doc["verdict"]
    assert verdict["status"] == "drift"
    assert set(verdict["drifted"]) == {"monthly_charges", "usage_gb", "region"}
    assert doc["reference"]["rows"] == 5000 and len(doc["reference"]["sha256"]) == 64
    feature = verdict["features"][0]
    assert set(feature) >= {
        "name",
        "kind",
        "status",
        "test",
        "p_value",
        "p_adjusted",
        "effect",
        "effect_value",
        "threshold",
        "n_reference",
        "n_current",
        "scores",
    }


def test_html_report_is_self_contained(churn_data: Path, tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.html"
    code, _, _ = _run(
        "drift", "--reference", str(churn_data / "reference.csv"),
        "--current", str(churn_data / "traffic-shifted.csv"), "--exclude", "label",
        "--html", str(report),
    )  # fmt: skip
    assert code == 1
    page = report.read_text()
    assert page.count("<svg") == 7
    assert "monthly_charges" in page and "class='drift'" in page
    # No external asset: the only URL is the SVG namespace.
    assert set(re.findall(r"https?://[^\"' ]+", page)) == {"http://www.w3.org/2000/svg"}
    assert "<script" not in page


def test_profile_as_reference_gives_the_same_verdict(churn_data: Path, tmp_path: Path) -> None:
    prof = tmp_path / "profile.json"
    code, out, _ = _run(
        "profile", "--reference", str(churn_data / "reference.npz"),
        "--categorical", "region,plan", "--exclude", "label", "--segment", "region",
        "--out", str(prof),
    )  # fmt: skip
    assert code == 0, out
    doc = json.loads(prof.read_text())
    assert doc["format"] == "driftline.profile/v1"
    assert [f["source"]["column"] for f in doc["features"]] == list(range(7))
    assert set(doc["segments"]["region"]) == {"0", "1", "2", "3", "4"}
    # Current data in the model's encoding (codes), as the sidecar sees it.
    with np.load(churn_data / "reference.npz") as ref:
        cols = {k: ref[k] for k in ref.files if k != "label"}
    cur = tmp_path / "current.npz"
    np.savez(cur, **cols)
    code, out, _ = _run("drift", "--reference", str(prof), "--current", str(cur), "--json")
    assert code == 0
    verdict = json.loads(out)["verdict"]
    assert verdict["status"] == "no_drift" and verdict["drifted"] == []
    assert verdict["hypotheses"] > 7  # segments with >= 500 rows are judged too


def test_bad_input_exits_2_with_a_clear_message(churn_data: Path, tmp_path: Path) -> None:
    ref = str(churn_data / "reference.csv")
    code, _, err = _run("drift", "--reference", str(tmp_path / "nope.csv"), "--current", ref)
    assert code == 2 and "nope.csv: no such file" in err
    partial = tmp_path / "partial.csv"
    partial.write_text("tenure_months,age\n1,2\n")
    code, _, err = _run("drift", "--reference", ref, "--current", str(partial))
    assert code == 2 and "lacks the reference column(s)" in err and "monthly_charges" in err
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("a,b\n1,2\n3\n")
    code, _, err = _run("drift", "--reference", ref, "--current", str(ragged))
    assert code == 2 and "row 3 has 1 cells" in err
    code, _, err = _run("drift", "--reference", ref, "--current", ref, "--alpha", "2")
    assert code == 2 and "--alpha" in err
    code, _, err = _run("drift", "--reference", ref, "--current", ref, "--exclude", "nothere")
    assert code == 2 and "nothere" in err
    code, _, err = _run("profile", "--reference", ref, "--out", str(tmp_path / "p.json"),
                        "--segment", "age")  # fmt: skip
    assert code == 2 and "segment feature 'age'" in err
    assert not (tmp_path / "p.json").exists()


def test_too_few_rows_exit_3(churn_data: Path, tmp_path: Path) -> None:
    small = tmp_path / "small.csv"
    lines = (churn_data / "traffic-shifted.csv").read_text().splitlines()[:101]
    small.write_text("\n".join(lines) + "\n")
    code, out, _ = _run(
        "drift", "--reference", str(churn_data / "reference.csv"),
        "--current", str(small), "--exclude", "label",
    )  # fmt: skip
    assert code == 3
    assert "not_enough_data" in out
