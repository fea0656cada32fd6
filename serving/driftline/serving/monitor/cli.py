"""The ``driftline profile``, ``driftline drift`` and ``driftline monitor`` commands.

Who uses it: ``driftline.operator.cli`` registers :data:`profile`, :data:`drift` and
:data:`monitor`. Heavy imports (numpy, scipy, the HTTP stack) happen inside the commands so that
``driftline --help`` stays fast.

``driftline drift`` exit codes: 0 no drift, 1 drift, 2 bad input (missing file, mismatched
columns, invalid option; the message names it), 3 not enough data to judge.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

if TYPE_CHECKING:
    from driftline.serving.drift.decide import DecisionConfig
    from driftline.serving.drift.profile import Profile, Source

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

EXIT_NO_DRIFT = 0
EXIT_DRIFT = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_ENOUGH_DATA = 3


def _fail(command: str, message: str) -> NoReturn:
    click.echo(f"driftline {command}: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _names(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename (never half-written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sources(
    names: list[str], features: Path | None, input_name: str, outputs: tuple[str, ...]
) -> tuple[list[str], list[str], dict[str, Source]]:
    """Feature columns, categorical columns and record sources from the options.

    ``--features`` takes a Model's ``features`` list: ``[{name, type, input, column}]`` where
    ``column`` is the reference column (default ``name``); features sharing an input take its
    columns in the order listed. Without it, every reference column feeds ``--input-name`` in
    column order. ``--output NAME=TENSOR[:COL]`` marks reference column NAME as a prediction
    found in output TENSOR.
    """
    from driftline.serving.drift.profile import Source

    sources: dict[str, Source] = {}
    categorical: list[str] = []
    if features is not None:
        try:
            doc = json.loads(features.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"--features {features}: {exc}") from exc
        if not isinstance(doc, list) or not all(isinstance(f, dict) for f in doc):
            raise ValueError(f"--features {features}: expected a JSON list of objects")
        columns: list[str] = []
        position: dict[str, int] = {}
        for i, f in enumerate(doc):
            name, kind = f.get("name"), f.get("type", "numeric")
            tensor = f.get("input") or input_name
            column = f.get("column") or name
            if not isinstance(name, str) or not name or kind not in ("numeric", "categorical"):
                raise ValueError(f"--features[{i}]: needs a name and type numeric|categorical")
            if not isinstance(tensor, str) or not isinstance(column, str):
                raise ValueError(f"--features[{i}] ({name}): input and column must be strings")
            if column != name:
                raise ValueError(
                    f"--features[{i}] ({name}): a reference column named differently "
                    f"({column!r}) is not supported; rename the column to the feature name"
                )
            sources[name] = Source("input", tensor, position.get(tensor, 0))
            position[tensor] = position.get(tensor, 0) + 1
            columns.append(name)
            if kind == "categorical":
                categorical.append(name)
    else:
        columns = [n for n in names]
        for j, name in enumerate(columns):
            sources[name] = Source("input", input_name, j)
    for spec in outputs:
        name, sep, target = spec.partition("=")
        tensor, _, col = target.partition(":")
        if not sep or not name or not tensor or (col and not col.isdigit()):
            raise ValueError(f"--output {spec!r}: expected NAME=TENSOR[:COLUMN]")
        sources[name] = Source("output", tensor, int(col or 0))
        if name not in columns:
            columns.append(name)
    return columns, categorical, sources


def table_options(f: click.decorators.FC) -> click.decorators.FC:
    """Options shared by ``profile`` and ``drift``: how the data table's columns are read."""
    options = [
        click.option("--categorical", default=None, help="Comma-separated categorical columns."),
        click.option("--exclude", default=None,
                     help="Comma-separated columns to leave out (e.g. label)."),
        click.option("--bins", default=10, show_default=True, type=click.IntRange(2, 1000),
                     help="PSI bins per numeric feature (reference quantiles)."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


@click.command(context_settings=CONTEXT)
@click.option(
    "--reference",
    "reference",
    required=True,
    type=click.Path(path_type=Path),
    help="Reference data: .npz (one array per column) or .csv with a header row.",
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the profile (JSON; written atomically).",
)
@table_options
@click.option(
    "--segment",
    "segments",
    default=None,
    help="Comma-separated categorical columns to keep per-value reference counts for.",
)
@click.option(
    "--grid-points",
    default=512,
    show_default=True,
    type=click.IntRange(2, 100_000),
    help="Support points per numeric feature (KS/Wasserstein resolution).",
)
@click.option(
    "--input-name",
    default="input",
    show_default=True,
    help="The model input whose columns are the reference columns, in order.",
)
@click.option(
    "--features",
    "features",
    default=None,
    type=click.Path(path_type=Path),
    help="JSON list of the Model's features [{name, type, input, column}].",
)
@click.option(
    "--output",
    "outputs",
    multiple=True,
    help="NAME=TENSOR[:COL]: reference column NAME is the prediction in output TENSOR.",
)
@click.option("--model-sha256", default=None, help="sha256 of the Model's ONNX artifact.")
def profile(
    reference: Path,
    out: Path,
    categorical: str | None,
    exclude: str | None,
    segments: str | None,
    bins: int,
    grid_points: int,
    input_name: str,
    features: Path | None,
    outputs: tuple[str, ...],
    model_sha256: str | None,
) -> None:  # fmt: skip
    """Build a reference profile: the bins and counts the drift monitor compares windows with.

    The profile is versioned with the reference file's sha256 and records where each feature
    lives in the prediction records (input tensor and column), so the sidecar can find it.
    """
    from driftline.serving.drift.profile import ProfileError, build_profile, profile_to_json
    from driftline.serving.monitor.dataset import DatasetError, read_table, select, sha256_file

    try:
        table = select(read_table(reference), _names(exclude), reference)
        columns, cats, sources = _sources(list(table), features, input_name, outputs)
        missing = [c for c in columns if c not in table]
        if missing:
            raise DatasetError(f"{reference}: no column(s) {missing}")
        built = build_profile(
            {c: table[c] for c in columns},
            sha256_file(reference),
            categorical=sorted(set(cats) | set(_names(categorical))),
            bins=bins,
            grid_points=grid_points,
            segments=_names(segments),
            sources=sources,
            model_sha256=model_sha256,
        )
    except (DatasetError, ProfileError, ValueError) as exc:
        _fail("profile", str(exc))
    text = json.dumps(profile_to_json(built), separators=(",", ":"), allow_nan=False)
    write_atomic(out, text + "\n")
    layout = built.layout
    click.echo(
        f"profile {out}: {built.reference.rows} rows, {len(layout.numeric)} numeric and "
        f"{len(layout.categorical)} categorical features, reference sha256 "
        f"{built.reference_sha256[:12]}…, {len(text) // 1024} KiB"
    )


def decision_options(f: click.decorators.FC) -> click.decorators.FC:
    """Options shared by ``drift`` and ``monitor``: gates, alpha and correction."""
    options = [
        click.option("--alpha", default=0.05, show_default=True,
                     type=click.FloatRange(0, 1, min_open=True, max_open=True),
                     help="Family-wise error (bonferroni) or false discovery rate (fdr)."),
        click.option("--correction", default="bonferroni", show_default=True,
                     type=click.Choice(["bonferroni", "fdr", "none"])),
        click.option("--min-samples", default=500, show_default=True, type=click.IntRange(1),
                     help="Values needed per feature (and rows per window) to judge."),
        click.option("--numeric-effect", default="wasserstein", show_default=True,
                     type=click.Choice(["wasserstein", "ks", "psi", "jensen_shannon"]),
                     help="Effect-size gate for numeric features."),
        click.option("--numeric-threshold", default=None, type=click.FloatRange(0),
                     help="Gate value [default: wasserstein 0.1, ks 0.1, psi 0.2, js 0.1]."),
        click.option("--categorical-effect", default="jensen_shannon", show_default=True,
                     type=click.Choice(["jensen_shannon", "psi"]),
                     help="Effect-size gate for categorical features."),
        click.option("--categorical-threshold", default=None, type=click.FloatRange(0),
                     help="Gate value [default: js 0.1, psi 0.2]."),
        click.option("--min-drifted", default=1, show_default=True, type=click.IntRange(1),
                     help="Drifted features that make the whole window drift."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def build_decision(
    alpha: float,
    correction: str,
    min_samples: int,
    numeric_effect: str,
    numeric_threshold: float | None,
    categorical_effect: str,
    categorical_threshold: float | None,
    min_drifted: int,
    predictions: frozenset[str] = frozenset(),
) -> DecisionConfig:
    """The decision config from the shared options."""
    from driftline.serving.drift.decide import (
        DEFAULT_THRESHOLDS,
        Correction,
        DecisionConfig,
        Rule,
    )

    return DecisionConfig(
        alpha=alpha,
        correction=Correction(correction),
        min_samples=min_samples,
        numeric=Rule(numeric_effect, numeric_threshold or DEFAULT_THRESHOLDS[numeric_effect]),
        categorical=Rule(
            categorical_effect, categorical_threshold or DEFAULT_THRESHOLDS[categorical_effect]
        ),
        min_drifted=min_drifted,
        predictions=predictions,
    )


def _load_reference(
    path: Path, categorical: list[str], exclude: list[str], segments: list[str], bins: int
) -> Profile:
    from driftline.serving.drift.profile import build_profile, profile_from_json
    from driftline.serving.monitor.dataset import DatasetError, read_table, select, sha256_file

    if path.suffix.lower() == ".json":
        if not path.is_file():
            raise DatasetError(f"{path}: no such file")
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: not a JSON profile ({exc})") from exc
        return profile_from_json(doc)
    table = select(read_table(path), exclude, path)
    return build_profile(
        table, sha256_file(path), categorical=categorical, bins=bins, segments=segments
    )


@click.command(context_settings=CONTEXT)
@click.option(
    "--reference",
    required=True,
    type=click.Path(path_type=Path),
    help="Reference data (.npz, .csv) or a profile (.json) from 'driftline profile'.",
)
@click.option(
    "--current",
    required=True,
    type=click.Path(path_type=Path),
    help="Current data (.npz or .csv) with the reference's columns.",
)
@table_options
@click.option(
    "--segment",
    "segments",
    default=None,
    help="Comma-separated categorical columns to judge per value as well.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@click.option(
    "--html",
    "html_path",
    default=None,
    type=click.Path(path_type=Path),
    help="Also write a self-contained HTML report with a histogram per feature.",
)
@decision_options
def drift(
    reference: Path,
    current: Path,
    categorical: str | None,
    exclude: str | None,
    segments: str | None,
    bins: int,
    as_json: bool,
    html_path: Path | None,
    **decision: object,
) -> None:  # fmt: skip
    """Compare current data with reference data, feature by feature.

    A feature drifts when its effect size reaches the gate AND its multiplicity-corrected
    p-value (KS for numeric, chi-square for categorical features) is below alpha. Exit code:
    0 no drift, 1 drift, 2 bad input, 3 not enough data.
    """
    from driftline.serving.drift.decide import DecisionError, Status, verdict_to_json
    from driftline.serving.drift.evaluate import evaluate_table
    from driftline.serving.drift.profile import ProfileError
    from driftline.serving.drift.report import html_report, text_table
    from driftline.serving.monitor.dataset import DatasetError, read_table, sha256_file

    excluded = _names(exclude)
    try:
        cfg = build_decision(**decision)  # type: ignore[arg-type]
        prof = _load_reference(reference, _names(categorical), excluded, _names(segments), bins)
        table = read_table(current)
        table = {k: v for k, v in table.items() if k not in set(excluded)}
        missing = [n for n in prof.layout.names if n not in table]
        if missing:
            raise DatasetError(f"{current}: lacks the reference column(s) {missing}")
        evaluation = evaluate_table(prof, table, cfg)
    except (DatasetError, ProfileError, DecisionError) as exc:
        _fail("drift", str(exc))
    verdict = evaluation.verdict
    extra = sorted(set(table) - set(prof.layout.names))
    if extra:
        click.echo(f"driftline drift: ignoring columns not in the reference: {extra}", err=True)
    if as_json:
        doc = {
            "reference": {"path": str(reference), "sha256": prof.reference_sha256,
                          "rows": prof.reference.rows},
            "current": {"path": str(current), "sha256": sha256_file(current),
                        "rows": evaluation.current.rows},
            "verdict": verdict_to_json(verdict),
        }  # fmt: skip
        click.echo(json.dumps(doc, indent=2, allow_nan=False))
    else:
        click.echo(text_table(verdict))
    if html_path is not None:
        meta = {
            "reference": f"{reference} ({prof.reference.rows} rows, sha256 "
            f"{prof.reference_sha256[:12]}…)",
            "current": f"{current} ({evaluation.current.rows} rows)",
        }
        page = html_report(prof.layout, verdict, prof.reference, evaluation.current, meta)
        write_atomic(html_path, page)
    codes = {Status.NO_DRIFT: EXIT_NO_DRIFT, Status.DRIFT: EXIT_DRIFT}
    sys.exit(codes.get(verdict.status, EXIT_NOT_ENOUGH_DATA))


def _monitor(**flags: object) -> None:
    import logging

    from driftline.serving.flags import settings_from_flags
    from driftline.serving.monitor.settings import MonitorSettings

    settings = settings_from_flags(MonitorSettings, flags)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from driftline.serving.monitor.run import MonitorStartError, run

    try:
        run(settings)
    except MonitorStartError as exc:
        _fail("monitor", str(exc))


def _monitor_command() -> click.Command:
    from driftline.serving.flags import options_for
    from driftline.serving.monitor.settings import MonitorSettings

    return click.Command(
        "monitor",
        callback=_monitor,
        params=options_for(MonitorSettings),
        context_settings=CONTEXT,
        help=(
            "Run the drift monitor sidecar over a reference profile.\n\n"
            "The model server POSTs prediction record frames to /v1/records; delayed labels "
            "arrive at POST /v1/feedback. GET /v1/verdict answers the current verdict per "
            "variant, GET /v1/window the mergeable window counts, GET /metrics Prometheus "
            "metrics. Every flag can also be set with the environment variable shown; a flag "
            "given on the command line wins. State is in memory: a restart loses at most the "
            "current window."
        ),
    )


monitor = _monitor_command()
