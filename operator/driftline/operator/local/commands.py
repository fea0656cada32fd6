"""The local-mode commands: ``driftline up|status|apply|promote|abort|pause|resume|retry|down``.

Who uses it: ``driftline.operator.cli`` registers them. ``up`` runs in the foreground (Ctrl-C
stops it and every process it started); the others talk to it from another terminal through the
state directory (:mod:`driftline.operator.local.state`): ``status`` reads the status files,
``apply`` and the rollout verbs queue a command file and wait (bounded) for the loop's answer,
``down`` signals the ``up`` process by its recorded pid and waits for it to finish cleaning up
(or, when it died, stops the children it recorded, by pid). Heavy imports happen inside the
commands, so ``driftline --help`` stays fast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

STATE_DIR_OPTION = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="DRIFTLINE_LOCAL_STATE_DIR",
    show_envvar=True,
    help="Local state directory [default: .driftline in the current folder].",
)
FILES_OPTION = click.option(
    "-f",
    "--filename",
    "files",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Manifest file or folder (all four kinds; repeatable), as for kubectl apply -f.",
)
ANSWER_TIMEOUT_S = 15.0
"""How long a command waits for the running ``up`` to answer."""


def _settings(**given: Any) -> Any:
    from driftline.operator.local.settings import LocalSettings
    from driftline.serving.flags import settings_from_flags

    return settings_from_flags(LocalSettings, given)


def _load(files: tuple[Path, ...], *, check_references: bool = True) -> Any:
    from driftline.operator.local.manifests import (
        ManifestError,
        load_documents,
        parse_bundle,
    )

    if not files:
        raise click.UsageError("give the manifests with -f FILE_OR_FOLDER (repeatable)")
    try:
        return parse_bundle(load_documents(list(files)), check_references=check_references)
    except ManifestError as exc:
        raise click.ClickException(str(exc)) from None


def _say(message: str) -> None:
    click.echo(f"{time.strftime('%H:%M:%S')}  {message}", err=False)
    sys.stdout.flush()


@click.command("up", context_settings=CONTEXT)
@FILES_OPTION
@STATE_DIR_OPTION
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    envvar="DRIFTLINE_LOCAL_PORT",
    show_envvar=True,
    help="Router port of the first Deployment on 127.0.0.1 (0 = any free port) [default: 8000].",
)
@click.option(
    "--tick",
    "tick_s",
    type=float,
    default=None,
    envvar="DRIFTLINE_LOCAL_TICK_S",
    show_envvar=True,
    help="Seconds between passes of the control loop [default: 0.5].",
)
def up(
    files: tuple[Path, ...], state_dir: Path | None, port: int | None, tick_s: float | None
) -> None:
    """Run the manifests on this machine: servers, monitors, a router and the rollout loop.

    Reads the same YAML that goes to a cluster. For each Deployment: model servers for every live
    variant (ports chosen automatically, printed), a router on one stable port, and a control
    loop that uses the operator's plan, rollout state machine and analysis. Runs in the
    foreground; Ctrl-C (or `driftline down` from another terminal) stops every process it
    started. Change things while it runs with `driftline apply -f`, steer a rollout with
    `driftline promote|abort|pause|resume|retry NAME`, look with `driftline status`.
    """
    import asyncio
    import signal

    from driftline.operator.local.manifests import limitations
    from driftline.operator.local.runtime import LocalRuntime
    from driftline.operator.local.state import StateDir
    from driftline.operator.local.supervisor import pid_alive

    settings = _settings(state_dir=state_dir, port=port, tick_s=tick_s)
    bundle = _load(files)
    running = StateDir(settings.state_dir).read_up()
    if running is not None and pid_alive(running.pid):
        raise click.ClickException(
            f"driftline up is already running here (pid {running.pid}, state in "
            f"{settings.state_dir}); stop it with `driftline down` or use another --state-dir"
        )
    for note in (*bundle.notes, *limitations(bundle)):
        _say(f"note: {note}")
    _say(
        f"up: {len(bundle.models)} Model(s), {len(bundle.deployments)} Deployment(s); state in "
        f"{settings.state_dir}; Ctrl-C or `driftline down` stops everything"
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        runtime = LocalRuntime(settings, bundle, say=_say, sources=[str(f) for f in files])
        await runtime.run(stop)

    asyncio.run(main())


@click.command("status", context_settings=CONTEXT)
@click.argument("name", required=False)
@STATE_DIR_OPTION
@click.option("--processes/--no-processes", default=True, help="List the child processes too.")
@click.option("--history", type=click.IntRange(0, 50), default=5, show_default=True)
def status(name: str | None, state_dir: Path | None, processes: bool, history: int) -> None:
    """Show the status of the Deployments run by `driftline up` (or of NAME).

    The same text as `kubectl driftline status` shows for a cluster. Exit code 1 when a shown
    Deployment is Degraded (a CI gate), 2 when nothing is found.
    """
    from datetime import UTC, datetime

    from pydantic import ValidationError

    from driftline.operator.api import Deployment
    from driftline.operator.local.state import StateDir
    from driftline.operator.local.supervisor import pid_alive
    from driftline.operator.statusview import render_deployment, render_table

    settings = _settings(state_dir=state_dir)
    state = StateDir(settings.state_dir)
    names = [name] if name else state.object_names("Deployment")
    deployments = []
    for n in names:
        raw = state.read_object("Deployment", n)
        if raw is None:
            continue
        try:
            deployments.append(Deployment.from_manifest(raw))
        except ValidationError as exc:
            raise click.ClickException(f"{state.object_file('Deployment', n)}: {exc}") from None
    if not deployments:
        where = f"Deployment {name!r}" if name else "no Deployment"
        click.echo(f"{where} found in {settings.state_dir} (is `driftline up` running here?)")
        sys.exit(2)
    now = datetime.now(UTC)
    up_record = state.read_up()
    alive = up_record is not None and pid_alive(up_record.pid)
    running = f"running, pid {up_record.pid}" if alive and up_record else "not running"
    click.echo(f"driftline up: {running}")
    if name is None and len(deployments) > 1:
        click.echo(render_table(deployments, now))
    for d in deployments:
        click.echo(render_deployment(d, now, history=history))
    if processes and alive:
        click.echo(f"\n{'PROCESS':<28} {'ROLE':<7} {'PID':>7} {'URL':<24} {'STATE':<10} RESTARTS")
        for p in state.read_processes():
            if name and p.deployment != name:
                continue
            click.echo(
                f"{p.name:<28} {p.role:<7} {p.pid or '-':>7} {p.url:<24} {p.state:<10} {p.restarts}"
            )
    sys.exit(1 if any(d.status and d.status.phase == "Degraded" for d in deployments) else 0)


def _send(state_dir: Path | None, verb: str, target: str | None, manifests: list[Any]) -> None:
    from driftline.operator.local.state import StateDir
    from driftline.operator.local.supervisor import pid_alive

    settings = _settings(state_dir=state_dir)
    state = StateDir(settings.state_dir)
    record = state.read_up()
    if record is None or not pid_alive(record.pid):
        raise click.ClickException(
            f"driftline up is not running with state in {settings.state_dir} (start it with "
            "`driftline up -f MANIFESTS`)"
        )
    command = state.send_command(verb, target=target, manifests=manifests)
    deadline = time.monotonic() + ANSWER_TIMEOUT_S
    while (answer := state.read_answer(command.id)) is None:
        if time.monotonic() > deadline or not pid_alive(record.pid):
            raise click.ClickException(
                f"no answer from driftline up (pid {record.pid}) within {ANSWER_TIMEOUT_S:g}s"
            )
        time.sleep(0.05)
    click.echo(answer.message)
    if not answer.ok:
        sys.exit(1)


@click.command("apply", context_settings=CONTEXT)
@FILES_OPTION
@STATE_DIR_OPTION
def apply(files: tuple[Path, ...], state_dir: Path | None) -> None:
    """Change objects while `driftline up` runs (e.g. a Deployment's spec.model: a rollout).

    The manifests are validated here, exactly as `up` and an API server would, then handed to the
    running `up`, which answers what changed.
    """
    bundle = _load(files, check_references=False)
    _send(state_dir, "apply", None, bundle.manifests())


def _verb(verb: str, summary: str) -> click.Command:
    @click.command(verb, context_settings=CONTEXT, help=summary)
    @click.argument("name")
    @STATE_DIR_OPTION
    def command(name: str, state_dir: Path | None) -> None:
        _send(state_dir, verb, name, [])

    return command


promote = _verb(
    "promote",
    "Promote the rollout of Deployment NAME: skip the remaining steps (or approve a paused one).",
)
abort = _verb("abort", "Abort the rollout of Deployment NAME: all traffic back to stable.")
pause = _verb("pause", "Pause the rollout of Deployment NAME at its current weight.")
resume = _verb("resume", "Resume a paused rollout of Deployment NAME.")
retry = _verb("retry", "Retry an aborted or rolled-back rollout of Deployment NAME from step 1.")


@click.command("down", context_settings=CONTEXT)
@STATE_DIR_OPTION
@click.option(
    "--timeout",
    type=click.FloatRange(1, 600),
    default=30.0,
    show_default=True,
    help="Seconds to wait for everything to stop.",
)
def down(state_dir: Path | None, timeout: float) -> None:
    """Stop `driftline up` and every process it started.

    Sends SIGTERM to the `up` process (by its recorded pid) and waits until it has stopped its
    children. When `up` is already gone but left processes behind (it was killed), stops those by
    their recorded pids.
    """
    import os
    import signal

    from driftline.operator.local.state import StateDir
    from driftline.operator.local.supervisor import kill_recorded, pid_alive

    settings = _settings(state_dir=state_dir)
    state = StateDir(settings.state_dir)
    record = state.read_up()
    if record is not None and pid_alive(record.pid):
        os.kill(record.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while pid_alive(record.pid):
            if time.monotonic() > deadline:
                os.kill(record.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
        click.echo(f"stopped driftline up (pid {record.pid})")
    leftovers = kill_recorded(state.read_processes(), timeout_s=min(timeout, 10.0))
    if leftovers:
        click.echo(f"stopped {len(leftovers)} leftover process(es): {leftovers}")
    state.clear_up()
    if record is None and not leftovers:
        click.echo(f"nothing running with state in {settings.state_dir}")
