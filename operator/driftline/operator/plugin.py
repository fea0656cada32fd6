"""The ``kubectl driftline`` commands: status, promote, abort, retry, pause, resume.

Owns: the click commands of the kubectl plugin, the words they print, and the ``Api`` seam they
talk through. ``status`` reads Driftline Deployments and prints the same text local mode's
``driftline status`` prints (``driftline.operator.statusview``). The five rollout commands each send
one JSON merge patch of the ``driftline.dev/command`` annotation with a fresh id
(``driftline.operator.rollout.command_patch``): not a spec edit, so a GitOps sync does not revert
it and the generation does not move; the operator applies each id once, on its next reconcile.

Light at import time (``kubectl driftline --help`` stays fast): the Kubernetes client is imported
only by ``driftline.operator.plugin_kube``, which the commands load when they run. Tests replace
the connection through click's ``obj`` (a ``PluginContext`` whose ``connect`` returns a fake).

Errors (exit code 1, one line on stderr, never a traceback): no kubeconfig, an unknown context,
the API server unreachable or refusing, the object not found (its name and namespace), an object
that does not parse. Usage errors exit 2, as click does.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

import click

from driftline.operator.names import ANNOTATION_COMMAND, DEPLOYMENT

if TYPE_CHECKING:
    from driftline.operator.api import Deployment
    from driftline.operator.rollout import Verb

__all__ = [
    "VERB_EFFECTS",
    "Api",
    "PluginContext",
    "PluginError",
    "advice",
    "command_message",
    "commands",
    "status",
]

JsonObject = dict[str, Any]


class PluginError(click.ClickException):
    """A failure the user can act on; click prints ``Error: <message>`` and exits with 1."""

    exit_code = 1


class Api(Protocol):
    """What the commands need from the cluster; ``plugin_kube.KubeApi`` is the real one.

    Attributes:
        namespace: the kubeconfig context's namespace (the default for ``-n``).
        server: the API server's URL, for messages.
    """

    namespace: str
    server: str

    def get(self, namespace: str, name: str) -> JsonObject | None:
        """The Driftline Deployment, or ``None`` when absent."""
        ...

    def list(self, namespace: str | None) -> list[JsonObject]:
        """Driftline Deployments in ``namespace`` (every namespace when ``None``)."""
        ...

    def patch(self, namespace: str, name: str, body: JsonObject) -> JsonObject | None:
        """Merge-patch the Deployment; its new state, or ``None`` when absent."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


Connect = Callable[[str | None, str | None], Api]
"""``(kubeconfig, context) -> Api``; raises ``PluginError`` when the kubeconfig is unusable."""


@dataclass(frozen=True)
class PluginContext:
    """What the commands are given through click's ``obj`` (tests pass a fake ``connect``).

    Attributes:
        connect: opens the ``Api``; ``None`` means the real one over the kubeconfig.
        now: the clock (command ids, relative times).
    """

    connect: Connect | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)


def _real_connect(kubeconfig: str | None, context: str | None) -> Api:
    from driftline.operator import plugin_kube

    return plugin_kube.connect(kubeconfig, context)


def _plugin_context(ctx: click.Context) -> PluginContext:
    obj = ctx.find_object(PluginContext)
    return obj if obj is not None else PluginContext()


@contextmanager
def _session(ctx: click.Context, kubeconfig: str | None, context: str | None) -> Iterator[Api]:
    """Open the ``Api`` and map the API errors to one-line ``PluginError`` messages."""
    from driftline.operator.errors import ApiRejected, ApiUnavailable

    pctx = _plugin_context(ctx)
    api = (pctx.connect or _real_connect)(kubeconfig, context)
    try:
        yield api
    except ApiUnavailable as e:
        raise PluginError(f"cannot reach the Kubernetes API server at {api.server}: {e}") from e
    except ApiRejected as e:
        hint = " (check your RBAC permissions)" if e.status in (401, 403) else ""
        raise PluginError(f"the API server at {api.server} refused: {e}{hint}") from e
    finally:
        api.close()


def _not_found(name: str, namespace: str) -> PluginError:
    return PluginError(
        f'Driftline Deployment "{name}" not found in namespace "{namespace}" '
        f"(list them with: kubectl get {DEPLOYMENT.short_names[0]} -n {namespace})"
    )


def _parse(obj: Mapping[str, Any]) -> Deployment:
    """Parse an object read from the API server; an invalid one is named, not a traceback."""
    import pydantic

    from driftline.operator.api import Deployment

    meta = obj.get("metadata")
    where = (
        f"{meta.get('namespace', '?')}/{meta.get('name', '?')}" if isinstance(meta, dict) else "?"
    )
    try:
        return Deployment.from_manifest(obj)
    except pydantic.ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise PluginError(
            f"Deployment {where} does not parse: {field}: {first['msg']} "
            f"({e.error_count()} error(s))"
        ) from e


# ------------------------------------------------------------------------------------ pure words

VERB_EFFECTS: Mapping[str, str] = {
    "promote": "skip the remaining steps and gates: the new model becomes stable and takes all "
    "traffic",
    "abort": "roll back now: the canary's weight goes to 0 and all traffic returns to stable",
    "retry": "re-run the analysis from the current step (after an abort: resume at the step "
    "that failed)",
    "pause": "hold the current weights: no step advances until resume",
    "resume": "lift the pause (the step restarts its hold); at an approval gate: go to the next "
    "step",
}
"""What each command does to traffic, in the words ``--help`` and the confirmation use."""


def advice(verb: Verb, deployment: Deployment) -> str | None:
    """Why the operator will ignore ``verb`` given what the status shows, or ``None`` if it applies.

    Advisory only (the operator decides, from its own state): it reads the state back from the
    status exactly as the operator does and asks ``rollout.command_blocker``, the rule the
    operator applies, so a user learns at once that, e.g., there is nothing to promote, instead
    of finding a ``CommandIgnored`` line in the history later.

    Args:
        verb: the command sent.
        deployment: the Deployment as the API server returned it after the patch.

    Returns:
        A sentence, or ``None``.
    """
    from driftline.operator.rollout import Policy, command_blocker
    from driftline.operator.rollout_status import state_from_status

    s = deployment.status
    if s is None:
        return "the operator has not reported a status yet: is it running?"
    state = state_from_status(s, Policy())
    why = command_blocker(state, verb)
    if why is None:
        return None
    phase, stage = s.phase or "Pending", state.stage.value
    why = f"there is {why}"
    return f"{why} (phase {phase}, stage {stage}): the operator will record it as CommandIgnored"


def command_message(verb: Verb, name: str, namespace: str, value: str) -> str:
    """The confirmation ``kubectl driftline <verb>`` prints after the patch landed.

    Args:
        verb: the command.
        name: the Deployment.
        namespace: its namespace.
        value: the annotation value sent (``<verb>:<id>``).

    Returns:
        Lines without a trailing newline.
    """
    return "\n".join(
        [
            f"{verb} requested for Deployment {name} in namespace {namespace} "
            f"({ANNOTATION_COMMAND}={value})",
            f"The operator applies it once, on its next reconcile: {VERB_EFFECTS[verb]}.",
            f"Watch it: kubectl driftline status {name} -n {namespace}"
            f"  (or: kubectl get {DEPLOYMENT.short_names[0]} {name} -n {namespace} -w)",
        ]
    )


def table_with_namespaces(deployments: Sequence[Deployment], table: str) -> str:
    """Prefix ``render_table``'s rows with a NAMESPACE column (``status -A``), like kubectl."""
    lines = table.splitlines()
    width = max([len("NAMESPACE"), *(len(d.metadata.namespace or "") for d in deployments)])
    out = [f"{'NAMESPACE':<{width}}  {lines[0]}"]
    out += [
        f"{d.metadata.namespace or '':<{width}}  {row}"
        for d, row in zip(deployments, lines[1:], strict=True)
    ]
    return "\n".join(out)


# ------------------------------------------------------------------------------------- commands


def _connection_options(fn: Callable[..., None]) -> Callable[..., None]:
    """``--kubeconfig``, ``--context`` and ``-n/--namespace``, as kubectl spells them."""
    fn = click.option(
        "-n",
        "--namespace",
        default=None,
        help="Namespace of the Deployment. Default: the kubeconfig context's namespace.",
    )(fn)
    fn = click.option("--context", default=None, help="The kubeconfig context to use.")(fn)
    return click.option(
        "--kubeconfig",
        default=None,
        envvar="KUBECONFIG",
        show_envvar=True,
        help="Path to the kubeconfig file. Default: $KUBECONFIG, else ~/.kube/config.",
    )(fn)


def _dump(value: Any, output: str) -> str:
    if output == "json":
        import json

        return json.dumps(value, indent=2, sort_keys=True)
    import yaml

    return str(yaml.safe_dump(value, sort_keys=True)).rstrip("\n")


@click.command("status")
@click.argument("name", required=False)
@_connection_options
@click.option("-A", "--all-namespaces", is_flag=True, help="List Deployments in every namespace.")
@click.option(
    "-o",
    "--output",
    type=click.Choice(["text", "json", "yaml"]),
    default="text",
    show_default=True,
    help="text: the summary; json/yaml: the object(s) as the API server returns them.",
)
@click.option(
    "--history",
    type=click.IntRange(0, 50),
    default=5,
    show_default=True,
    help="How many of the latest history lines to show.",
)
@click.pass_context
def status(
    ctx: click.Context,
    name: str | None,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
    all_namespaces: bool,
    output: str,
    history: int,
) -> None:
    """Show a rollout: what serves, at what weight, and why.

    With NAME: one Driftline Deployment in detail (phase, variants with weights and replicas,
    the current step, the last analysis with the number behind each verdict, conditions and the
    latest history). Without NAME: one line per Deployment in the namespace (every namespace with
    -A). The same text local mode's `driftline status` prints. Read-only: no effect on traffic.
    """
    from driftline.operator.statusview import render_deployment, render_table

    if name is not None and all_namespaces:
        raise click.UsageError("NAME and -A/--all-namespaces exclude each other")
    now = _plugin_context(ctx).now()
    with _session(ctx, kubeconfig, context) as api:
        ns = namespace or api.namespace
        if name is not None:
            obj = api.get(ns, name)
            if obj is None:
                raise _not_found(name, ns)
            if output != "text":
                click.echo(_dump(obj, output))
                return
            click.echo(render_deployment(_parse(obj), now, history=history))
            return
        objs = api.list(None if all_namespaces else ns)
    objs.sort(key=lambda o: (str(o["metadata"].get("namespace")), str(o["metadata"].get("name"))))
    if output != "text":
        click.echo(_dump({"apiVersion": "v1", "kind": "List", "items": objs}, output))
        return
    if not objs:
        where = "any namespace" if all_namespaces else f"namespace {ns}"
        click.echo(f"No Driftline Deployments found in {where}.", err=True)
        return
    parsed = [_parse(o) for o in objs]
    table = render_table(parsed, now)
    click.echo(table_with_namespaces(parsed, table) if all_namespaces else table)


def _send(
    ctx: click.Context,
    verb: Verb,
    name: str,
    kubeconfig: str | None,
    context: str | None,
    namespace: str | None,
) -> None:
    """Patch the command annotation with a fresh id and confirm what was requested."""
    from driftline.operator.rollout import Command, command_patch, new_command_id

    pctx = _plugin_context(ctx)
    command = Command(verb, new_command_id(pctx.now(), secrets.token_hex(3)))
    with _session(ctx, kubeconfig, context) as api:
        ns = namespace or api.namespace
        patched = api.patch(ns, name, dict(command_patch(command)))
    if patched is None:
        raise _not_found(name, ns)
    click.echo(command_message(verb, name, ns, command.annotation_value()))
    try:
        note = advice(verb, _parse(patched))
    except PluginError:
        note = None  # the patch landed; the operator reports the object's own problem
    if note:
        click.echo(f"Note: {note}.", err=True)


def _verb_command(verb: Verb, summary: str) -> click.Command:
    @click.command(
        verb,
        help=f"""{summary}

Effect on traffic: {VERB_EFFECTS[verb]}.

Sends one merge patch of the annotation {ANNOTATION_COMMAND}={verb}:<id> with a fresh id (not a spec
edit: Argo CD and Flux do not revert it). The operator applies each id once, on its next
reconcile, and records the decision in status.history and an Event.""",
    )
    @click.argument("name")
    @_connection_options
    @click.pass_context
    def run(
        ctx: click.Context,
        name: str,
        kubeconfig: str | None,
        context: str | None,
        namespace: str | None,
    ) -> None:
        _send(ctx, verb, name, kubeconfig, context, namespace)

    return run


commands: tuple[click.Command, ...] = (
    status,
    _verb_command("promote", "Promote the rollout of NAME now, skipping the remaining steps."),
    _verb_command("abort", "Abort the rollout of NAME and roll back to the stable model."),
    _verb_command("retry", "Retry the rollout of NAME from its current (or failed) step."),
    _verb_command("pause", "Pause the rollout of NAME at its current weights."),
    _verb_command("resume", "Resume a paused rollout of NAME (or approve the next step)."),
)
"""Every plugin command, in the order ``kubectl driftline --help`` lists them."""
