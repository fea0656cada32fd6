"""The ``driftline load`` command (registered by ``driftline.operator.cli``).

Who uses it: users replaying a dataset against an OIP v2 endpoint, the quickstart demo and local
mode's tests. The engine is :mod:`driftline.serving.load`; it is imported inside the command (it
pulls in numpy and httpx) so ``driftline --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.command("load", context_settings=CONTEXT)
@click.argument("dataset", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--url",
    required=True,
    help="Infer URL, e.g. http://127.0.0.1:8000/v2/models/churn/infer (a router or a server).",
)
@click.option(
    "--rate",
    type=click.FloatRange(0.0, 100000.0),
    default=20.0,
    show_default=True,
    help="Requests per second (0 = as fast as --concurrency allows).",
)
@click.option("--count", type=click.IntRange(1), default=None, help="Most requests to send.")
@click.option(
    "--duration",
    type=click.FloatRange(0.0, 86400.0, min_open=True),
    default=None,
    help="Most seconds to send for. With neither --count nor --duration: 100 requests.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    help="Most requests in flight.",
)
@click.option(
    "--batch", type=click.IntRange(1, 4096), default=1, show_default=True, help="Rows per request."
)
@click.option(
    "--columns",
    default=None,
    help="Comma-separated feature columns in input order [default: all but the label].",
)
@click.option(
    "--label",
    default="label",
    show_default=True,
    help="Label column (sent as feedback; absent from the file = no feedback).",
)
@click.option(
    "--categories",
    multiple=True,
    metavar="COLUMN=NAME0,NAME1,...",
    help="Map a CSV column of category names to codes (position in the list). Repeatable.",
)
@click.option("--input-name", default="input", show_default=True, help="The model's input tensor.")
@click.option(
    "--datatype",
    type=click.Choice(["FP32", "FP64"]),
    default="FP32",
    show_default=True,
    help="The input's OIP datatype.",
)
@click.option(
    "--feedback-url",
    default=None,
    help="POST each answered request's label here after --feedback-delay "
    "(e.g. http://127.0.0.1:8000/v1/feedback on the router).",
)
@click.option(
    "--feedback-delay",
    type=click.FloatRange(0.0, 3600.0),
    default=1.0,
    show_default=True,
    help="Seconds between an answer and its label.",
)
@click.option(
    "--feedback-field",
    type=click.Choice(["label", "value"]),
    default="label",
    show_default=True,
    help="Send labels as a class (label) or a regression target (value).",
)
@click.option(
    "--header",
    "header_flags",
    multiple=True,
    metavar="NAME:VALUE",
    help="Extra request header (e.g. a sticky header). Repeatable.",
)
@click.option(
    "--start-row", type=click.IntRange(0), default=0, show_default=True, help="First row to send."
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.01, 600.0),
    default=10.0,
    show_default=True,
    help="Per-request timeout in seconds.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No progress line.")
def load(
    dataset: Path,
    url: str,
    rate: float,
    count: int | None,
    duration: float | None,
    concurrency: int,
    batch: int,
    columns: str | None,
    label: str,
    categories: tuple[str, ...],
    input_name: str,
    datatype: str,
    feedback_url: str | None,
    feedback_delay: float,
    feedback_field: str,
    header_flags: tuple[str, ...],
    start_row: int,
    timeout: float,
    as_json: bool,
    quiet: bool,
) -> None:
    """Replay the rows of DATASET (.csv or .npz) to an Open Inference Protocol v2 endpoint.

    Sends one request per --batch rows at --rate requests per second, cycling through the file,
    until --count requests or --duration seconds. Prints progress about once a second and a
    summary: sent, ok, errors, p50/p99 latency and the answers per variant (read from the
    router's x-driftline-variant header). Exit code 0 when every request succeeded, 1 otherwise.
    """
    import asyncio

    import orjson

    from driftline.serving import load as engine

    headers: dict[str, str] = {}
    for flag in header_flags:
        name, sep, value = flag.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{flag!r}: expected NAME:VALUE", param_hint="--header")
        headers[name.strip().lower()] = value.strip()
    if count is None and duration is None:
        count = 100
    try:
        mapping = engine.parse_categories(categories)
        data = engine.read_dataset(
            dataset,
            columns=[c.strip() for c in columns.split(",") if c.strip()] if columns else None,
            label=label or None,
            categories=mapping,
        )
        plan = engine.LoadPlan(
            url=url,
            rate=rate,
            count=count,
            duration_s=duration,
            concurrency=concurrency,
            batch=batch,
            input_name=input_name,
            datatype=datatype,
            timeout_s=timeout,
            feedback_url=feedback_url,
            feedback_delay_s=feedback_delay,
            feedback_field=feedback_field,
            start_row=start_row,
            headers=headers,
        )
    except (engine.DatasetError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None

    tty = sys.stderr.isatty()

    def show(p: engine.Progress) -> None:
        total = f"/{p.total}" if p.total is not None else ""
        variants = " ".join(f"{k}={v}" for k, v in sorted(p.by_variant.items()))
        line = f"load: {p.elapsed_s:5.1f}s sent {p.sent}{total} ok {p.ok} errors {p.errors}" + (
            f"  [{variants}]" if variants else ""
        )
        click.echo(("\r" + line + "   ") if tty else line, err=True, nl=not tty)

    click.echo(
        f"load: {data.rows} rows x {len(data.columns)} columns from {dataset} -> {url}", err=True
    )
    try:
        summary = asyncio.run(engine.run(plan, data, progress=None if quiet else show))
    except KeyboardInterrupt:
        raise click.Abort() from None
    if tty and not quiet:
        click.echo("", err=True)
    if as_json:
        click.echo(orjson.dumps(summary.to_json()).decode())
    else:
        click.echo(engine.render_summary(summary))
    sys.exit(0 if summary.error_count == 0 and summary.sent > 0 else 1)
