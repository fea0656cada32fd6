"""The ``driftline serve`` and ``driftline fetch`` commands (registered by the operator's CLI).

Who uses it: ``driftline.operator.cli`` adds :data:`serve` and :data:`fetch` to the ``driftline``
group. Heavy imports (numpy, onnxruntime, the HTTP stack) happen inside the commands so that
``driftline --help`` stays fast.

``serve``'s flags are generated from :class:`~driftline.serving.settings.ServerSettings`: one flag
per field, its help text the field's docstring, its environment variable
``DRIFTLINE_SERVE_<FIELD>``. A flag on the command line wins over the environment; the defaults
live in the settings class only.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click

from driftline.serving.flags import options_for, settings_from_flags
from driftline.serving.settings import ServerSettings

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def _serve(**flags: object) -> None:
    settings = settings_from_flags(ServerSettings, flags)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    from driftline.serving.http import run_event_loop
    from driftline.serving.server import run

    run_event_loop(run(settings))


serve = click.Command(
    "serve",
    callback=_serve,
    params=options_for(ServerSettings),
    context_settings=CONTEXT,
    help=(
        "Serve one ONNX model over the Open Inference Protocol v2 (REST).\n\n"
        "Endpoints: /v2, /v2/health/live, /v2/health/ready, /v2/models/NAME[/versions/V]"
        "[/ready|/infer], /metrics (Prometheus). Every flag can also be set with the environment "
        "variable shown; a flag given on the command line wins. The server answers probes at "
        "once and turns ready when the model is loaded and warmed up; SIGTERM stops accepting, "
        "finishes in-flight requests, flushes prediction records and exits."
    ),
)


@click.command(context_settings=CONTEXT)
@click.argument("uri", envvar="DRIFTLINE_FETCH_URI")
@click.option(
    "--sha256",
    required=True,
    envvar="DRIFTLINE_FETCH_SHA256",
    show_envvar=True,
    help="Expected sha256 of the file (64 hex digits, optional 'sha256:' prefix).",
)
@click.option(
    "--dest",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    envvar="DRIFTLINE_FETCH_DEST",
    show_envvar=True,
    help="Destination folder (created when missing).",
)
@click.option(
    "--name",
    default=None,
    envvar="DRIFTLINE_FETCH_NAME",
    show_envvar=True,
    help="Destination file name [default: the URI's last path segment].",
)
@click.option(
    "--attempts",
    default=5,
    show_default=True,
    type=click.IntRange(1, 100),
    envvar="DRIFTLINE_FETCH_ATTEMPTS",
    show_envvar=True,
    help="Attempts for transient failures (network errors, dropped connections, 408/429/5xx).",
)
@click.option(
    "--backoff-s",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0.0, 60.0),
    envvar="DRIFTLINE_FETCH_BACKOFF_S",
    show_envvar=True,
    help="Seconds before the first retry; doubles each retry (at most 10 s).",
)
@click.option(
    "--timeout-s",
    default=60.0,
    show_default=True,
    type=click.FloatRange(0.1, 3600.0),
    envvar="DRIFTLINE_FETCH_TIMEOUT_S",
    show_envvar=True,
    help="Network timeout per request in seconds.",
)
@click.option(
    "--max-bytes",
    default=None,
    type=click.IntRange(min=1),
    envvar="DRIFTLINE_FETCH_MAX_BYTES",
    show_envvar=True,
    help="Largest accepted artifact in bytes; a bigger one fails as soon as its declared "
    "Content-Length or the bytes read pass the limit, and nothing lands [default: no limit].",
)
def fetch(
    uri: str,
    sha256: str,
    dest: Path,
    name: str | None,
    attempts: int,
    backoff_s: float,
    timeout_s: float,
    max_bytes: int | None,
) -> None:
    """Download URI into DEST, verify its sha256 and rename it into place atomically.

    URI is http(s)://, file:// or a path (s3:// with the 's3' extra). Nothing is left at the
    destination unless the digest matches; a mismatch fails with both digests. Transient
    failures are retried with exponential backoff; a size limit (--max-bytes) is not retried.
    Prints the final path.
    """
    logging.basicConfig(level="INFO", format="%(levelname)s %(message)s", stream=sys.stderr)
    from driftline.serving.fetch import FetchError, RetryPolicy
    from driftline.serving.fetch import fetch as do_fetch

    try:
        path = do_fetch(
            uri,
            sha256,
            dest,
            name=name,
            retry=RetryPolicy(attempts=attempts, backoff_s=backoff_s),
            timeout_s=timeout_s,
            max_bytes=max_bytes,
        )
    except FetchError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(path))
