"""Train the quickstart models and write every artifact the quickstart manifests use.

A synthetic churn dataset with named numeric and categorical features; three scikit-learn
classifiers exported to ONNX with skl2onnx (plain tensor outputs ``label`` and ``probabilities``,
no ZipMap):

- ``model-v1.onnx``: logistic regression, the first model in production;
- ``model-v2.onnx``: gradient boosting, better on the same data (the rollout that should promote);
- ``model-v3.onnx``: trained on shuffled labels, so its predictions are noise (the rollout that
  should roll back).

Also written: ``reference.npz`` and ``reference.csv`` (the training features, named columns, for
drift), ``traffic.csv`` (fresh rows with labels, for load and delayed feedback),
``traffic-shifted.csv`` (the same population with a shifted input distribution), and
``digests.json`` (sha256 of every file). Everything is seeded: the same versions of the libraries
give the same bytes.

When run as a script it also refreshes the ``sha256:`` values in the quickstart manifests
(``manifests/*.yaml``) that name an artifact it wrote, so the manifests stay valid where floating
point differs (another CPU, another BLAS) and the bytes with it. With the pinned libraries on the
reference machine nothing changes (a unit test checks that the committed digests match).

Usage: ``python examples/quickstart/train.py [--out DIR] [--rows N] [--seed S] [--manifests DIR]``
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

NUMERIC = ("tenure_months", "monthly_charges", "support_calls", "usage_gb", "age")
CATEGORICAL = ("region", "plan")
FEATURES = NUMERIC + CATEGORICAL
"""Column order of the model's single float input ``input`` (categoricals as integer codes)."""
REGIONS = ("eu", "us", "apac", "latam", "africa")
PLANS = ("basic", "pro", "enterprise")
INPUT_NAME = "input"
DEFAULT_OUT = Path(__file__).resolve().parent / "artifacts"
DEFAULT_MANIFESTS = Path(__file__).resolve().parent / "manifests"
_URI_LINE = re.compile(r"^\s*uri:\s*file://\S*?([^/\s]+)\s*$")
_SHA_LINE = re.compile(r"^(\s*sha256:\s*)([0-9a-f]{64})(\s*)$")


def make_dataset(
    rows: int, seed: int, shift: float = 0.0
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
    """Draw ``rows`` customers and whether each churns.

    Args:
        rows: number of rows.
        seed: seed of the generator; the same seed gives the same rows.
        shift: input drift in standard deviations: moves ``monthly_charges`` and ``usage_gb`` up
            and tilts ``region`` towards ``apac`` (0 is the training distribution).

    Returns:
        ``(X, y)``: float32 features in :data:`FEATURES` order and int64 labels (1 = churn).
    """
    rng = np.random.default_rng(seed)
    tenure = rng.gamma(2.0, 12.0, rows)
    charges = rng.normal(70.0 + 15.0 * shift, 15.0, rows)
    calls = rng.poisson(1.5, rows).astype(np.float64)
    usage = rng.lognormal(3.0 + 0.3 * shift, 0.5, rows)
    age = rng.normal(45.0, 12.0, rows).clip(18, 90)
    region_p = np.array([0.3, 0.3, 0.2, 0.1, 0.1])
    if shift:
        region_p = region_p + np.array([-0.1, -0.1, 0.3, 0.0, 0.0]) * min(abs(shift), 1.0)
    region = rng.choice(len(REGIONS), rows, p=region_p / region_p.sum()).astype(np.float64)
    plan = rng.choice(len(PLANS), rows, p=[0.5, 0.35, 0.15]).astype(np.float64)
    logit = (
        -0.2
        - 0.06 * tenure
        + 0.03 * (charges - 70.0)
        + 0.5 * calls
        - 0.4 * plan
        + 0.6 * (region == 3)
        + 0.004 * (age - 45.0) ** 2
        + 1.2 * np.sin(usage / 8.0)
    )
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)
    x = np.column_stack([tenure, charges, calls, usage, age, region, plan]).astype(np.float32)
    return x, y


def _pipeline(kind: str, seed: int) -> object:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    n_num = len(NUMERIC)
    cats = list(range(n_num, len(FEATURES)))
    if kind == "logistic":
        pre = ColumnTransformer(
            [
                ("num", StandardScaler(), list(range(n_num))),
                ("cat", OneHotEncoder(handle_unknown="ignore"), cats),
            ]
        )
        return Pipeline([("pre", pre), ("clf", LogisticRegression(max_iter=500))])
    pre = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), cats)], remainder="passthrough"
    )
    clf = GradientBoostingClassifier(n_estimators=60, max_depth=3, random_state=seed)
    return Pipeline([("pre", pre), ("clf", clf)])


def train_onnx(
    kind: str, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64], seed: int
) -> tuple[bytes, float]:
    """Fit a pipeline of ``kind`` (``logistic`` or ``boosting``) and export it to ONNX.

    Returns:
        ``(onnx_bytes, training_accuracy)``.
    """
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    model = _pipeline(kind, seed)
    model.fit(x, y)  # type: ignore[attr-defined]
    accuracy = float((model.predict(x) == y).mean())  # type: ignore[attr-defined]
    onx = to_onnx(
        model,
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(FEATURES)]))],
        options={id(model.steps[-1][1]): {"zipmap": False}},  # type: ignore[attr-defined]
        target_opset=17,
    )
    # skl2onnx collects opset imports in a set, so their order (and the file's bytes) follows
    # PYTHONHASHSEED; sorting them makes the same inputs give the same bytes on every run.
    imports = sorted(onx.opset_import, key=lambda o: (o.domain, o.version))
    del onx.opset_import[:]
    onx.opset_import.extend(imports)
    return onx.SerializeToString(), accuracy


def write_csv(path: Path, x: npt.NDArray[np.float32], y: npt.NDArray[np.int64] | None) -> None:
    """Write features (categoricals as their names) and optionally the label, with a header."""
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow([*FEATURES, *(["label"] if y is not None else [])])
        for i, row in enumerate(x):
            cells: list[object] = [f"{v:.6g}" for v in row[: len(NUMERIC)]]
            cells += [REGIONS[int(row[5])], PLANS[int(row[6])]]
            if y is not None:
                cells.append(int(y[i]))
            writer.writerow(cells)


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build(out: Path, rows: int = 5000, seed: int = 0, log: bool = True) -> dict[str, str]:
    """Write every quickstart artifact into ``out`` and return ``{file name: sha256}``."""
    out.mkdir(parents=True, exist_ok=True)

    def say(msg: str) -> None:
        if log:
            print(msg, flush=True)

    x, y = make_dataset(rows, seed)
    models = {
        "model-v1.onnx": ("logistic", y),
        "model-v2.onnx": ("boosting", y),
        "model-v3.onnx": ("logistic", np.random.default_rng(seed + 99).permutation(y)),
    }
    for i, (name, (kind, labels)) in enumerate(models.items(), 1):
        say(f"[{i}/4] training {name} ({kind}) on {rows} rows ...")
        blob, acc = train_onnx(kind, x, labels, seed)
        (out / name).write_bytes(blob)
        say(f"      training accuracy {acc:.3f}, {len(blob)} bytes")
    say("[4/4] writing reference and traffic data ...")
    columns = {name: x[:, j] for j, name in enumerate(FEATURES)}
    np.savez(out / "reference.npz", **columns, label=y)
    write_csv(out / "reference.csv", x, y)
    tx, ty = make_dataset(rows, seed + 1)
    write_csv(out / "traffic.csv", tx, ty)
    sx, sy = make_dataset(rows, seed + 2, shift=1.0)
    write_csv(out / "traffic-shifted.csv", sx, sy)
    digests = {
        p.name: sha256(p) for p in sorted(out.iterdir()) if p.is_file() and p.suffix != ".json"
    }
    (out / "digests.json").write_text(json.dumps(digests, indent=2, sort_keys=True) + "\n")
    say(f"artifacts in {out}")
    return digests


def refresh_manifest_digests(manifests: Path, digests: dict[str, str]) -> list[Path]:
    """Rewrite ``sha256:`` values that follow a ``uri: file://.../<artifact>`` line.

    Only the digest text changes (comments and layout stay); files are rewritten only when a
    digest differs.

    Returns:
        The manifest files that changed.
    """
    changed: list[Path] = []
    for path in sorted(manifests.glob("*.yaml")):
        lines = path.read_text().splitlines(keepends=True)
        artifact: str | None = None
        for i, line in enumerate(lines):
            uri = _URI_LINE.match(line)
            if uri:
                artifact = uri.group(1)
                continue
            sha = _SHA_LINE.match(line.rstrip("\n"))
            if sha and artifact in digests and sha.group(2) != digests[artifact]:
                lines[i] = f"{sha.group(1)}{digests[artifact]}{sha.group(3)}\n"
            if sha:
                artifact = None
        text = "".join(lines)
        if text != path.read_text():
            path.write_text(text)
            changed.append(path)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the artifacts")
    parser.add_argument("--rows", type=int, default=5000, help="rows of training data")
    parser.add_argument("--seed", type=int, default=0, help="seed of every random draw")
    parser.add_argument(
        "--manifests",
        type=Path,
        default=DEFAULT_MANIFESTS,
        help="folder of manifests whose sha256 values are refreshed ('' to skip)",
    )
    args = parser.parse_args(argv)
    if args.rows < 100:
        parser.error("--rows must be at least 100")
    digests = build(args.out, args.rows, args.seed)
    if str(args.manifests) not in ("", ".") and args.manifests.is_dir():
        for path in refresh_manifest_digests(args.manifests, digests):
            print(f"updated sha256 digests in {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
