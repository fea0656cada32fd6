"""Every kopf handler of the operator, registered into a registry passed in.

Handlers are thin and level-based: parse, load references, decide (pure modules: ``plan``,
``render``, ``status``), apply through the ``Cluster`` seam, write status through kopf's ``patch``.
They return ``None`` (kopf would store a return value under ``status.<handler id>``, outside the
CRD schema). Errors are mapped to kopf's permanent/temporary errors in exactly one place,
``kopf_error``.

- Model: on create/update/resume, fetch the artifact into a temporary folder (``file``, ``http(s)``,
  ``s3``: the serving fetcher, size-limited and sha256-verified), read the graph, check the
  features; with ``spec.reference``, fetch and verify the dataset the same way, check its columns
  and store the reference profile in the ConfigMap ``<model>-profile`` (owned by the Model); then
  write status (signature, opset, size, profile ConfigMap and size, Ready). A wrong digest, an
  unreadable graph or reference columns that do not match are permanent: Ready=False,
  Stalled=True with the reason, no retries until the spec changes (a resumed operator does not
  fetch again either). A network error or 5xx is temporary: Pending, retried with exponential
  backoff from ``temporary_error_delay`` up to ``MAX_MODEL_BACKOFF``. A Ready Model whose profile
  ConfigMap was deleted gets it rebuilt the next time the handler runs (on resume).
- Deployment: on create/update/resume, when a child Deployment's ready pods change (a watch on
  our children pokes the owner's timer, see ``observed`` and ``cadence``) and every
  ``resync_interval`` (a timer), reconcile: parse, load Models and the DriftMonitor that targets
  it (its settings become the monitor sidecars' flags), adopt ``spec.model`` where no rollout is
  needed, plan, render, apply, prune, status (observedGeneration, conditions, phase, variants,
  endpoint) and an Event for every decision.

``register(registry, ctx)`` instead of module-level decorators: each test (and each process) builds
a fresh ``kopf.OperatorRegistry`` with its own settings, metrics and cluster seam.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import tempfile
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import kopf
import pydantic

from driftline.operator import (
    analysis,
    cadence,
    conditions,
    drift_controller,
    drift_status,
    names,
    plan,
    profiles,
    render,
    rollout,
    rollout_status,
    status,
)
from driftline.operator.api import Deployment, DriftMonitor, Model
from driftline.operator.api.deployment import DeploymentStatus
from driftline.operator.api.driftmonitor import DriftMonitorSpec
from driftline.operator.artifacts import ArtifactSource, FetchingSource, check_features, read_graph
from driftline.operator.errors import (
    DependencyNotReady,
    OperatorError,
    PermanentFailure,
    SpecInvalid,
    TemporaryFailure,
)
from driftline.operator.k8s import Cluster
from driftline.operator.manifests import JsonObject, Manifest, is_noop, key_of, owner_reference
from driftline.operator.metrics import Metrics
from driftline.operator.observed import Observed, ready_replicas
from driftline.operator.settings import OperatorSettings, configure_kopf

log = logging.getLogger(__name__)

MAX_MODEL_BYTES = 2 << 30
"""Largest artifact the operator fetches, hashes and loads (2 GiB): bounds its disk and time."""
MAX_MODEL_BACKOFF = 300.0
"""Longest wait (seconds) between fetch attempts of a Model whose artifact is unreachable."""


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _NoData:
    """A provider that measures nothing (every check inconclusive): the default seam."""

    async def measure(self, target: analysis.Target) -> analysis.Measurements:
        return analysis.Measurements()


@dataclass
class Context:
    """What every handler needs, built once per process by the runner."""

    settings: OperatorSettings
    metrics: Metrics
    cluster: Cluster
    artifacts: ArtifactSource = field(default_factory=FetchingSource)
    clock: Callable[[], datetime] = _utcnow
    provider: Callable[[rollout.Policy], analysis.Provider] = field(default=lambda _: _NoData())
    """Builds the analysis provider for a Deployment's policy (the runner passes the HTTP one)."""
    _locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    _due: dict[tuple[str, str], float] = field(default_factory=dict)
    """When each Deployment is next due for a timer reconcile (``time.monotonic`` seconds)."""
    observed: Observed = field(default_factory=Observed)
    """What the child-Deployment and Model watches saw (ready pods, Model bodies)."""
    _pokes: dict[tuple[str, str], asyncio.Event] = field(default_factory=dict)
    fleet: drift_controller.FleetReader | None = None
    """Reads and judges a variant's merged window for DriftMonitors (None: they are not
    evaluated). The runner passes ``HttpProvider.fleet``."""

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        """One lock per object: the timer and a change handler never reconcile it at once."""
        return self._locks.setdefault((namespace, name), asyncio.Lock())

    def schedule(self, namespace: str, name: str, in_s: float) -> None:
        """Make the object due for the timer ``in_s`` seconds from now (see ``cadence``)."""
        self._due[(namespace, name)] = time.monotonic() + in_s

    def due_at(self, namespace: str, name: str) -> float | None:
        """When the object is due (``time.monotonic``); None: never reconciled here."""
        return self._due.get((namespace, name))

    def pokes(self, namespace: str, name: str) -> asyncio.Event:
        """The object's poke: set when it must reconcile now (a child's readiness changed).

        Its timer waits on it; ``reconcile_deployment`` clears it when it starts.
        """
        return self._pokes.setdefault((namespace, name), asyncio.Event())

    def poke(self, namespace: str, name: str) -> None:
        """Make an object this process reconciles due at once (one never reconciled already is)."""
        if (namespace, name) in self._due:
            self.pokes(namespace, name).set()

    def forget(self, namespace: str, name: str) -> None:
        """Drop the per-object lock, schedule and poke of a deleted object."""
        self._due.pop((namespace, name), None)
        self._locks.pop((namespace, name), None)
        self._pokes.pop((namespace, name), None)


def kopf_error(error: OperatorError) -> kopf.PermanentError | kopf.TemporaryError:
    """The one mapping of Driftline's errors to kopf's: permanent stops retries; temporary waits."""
    if isinstance(error, TemporaryFailure):
        return kopf.TemporaryError(f"{error.reason}: {error.message}", delay=error.delay)
    if isinstance(error, PermanentFailure):
        return kopf.PermanentError(f"{error.reason}: {error.message}")
    return kopf.TemporaryError(f"{error.reason}: {error.message}", delay=10)


def _invalid(error: pydantic.ValidationError, kind: str) -> SpecInvalid:
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or kind}: {e['msg']}" for e in error.errors()[:5]
    )
    return SpecInvalid(f"invalid {kind}: {problems}")


def _plain(body: Mapping[str, Any]) -> dict[str, Any]:
    """A kopf body as plain dicts (the edge: kopf's views become data)."""
    return {k: body[k] for k in ("apiVersion", "kind", "metadata", "spec", "status") if k in body}


def _status_wire(value: pydantic.BaseModel) -> JsonObject:
    return cast(JsonObject, value.model_dump(mode="json", by_alias=True, exclude_none=True))


def _set_status(patch: kopf.Patch, old: Any, new: pydantic.BaseModel) -> None:
    """Patch the status to ``new``; nothing when it already is (no write on an unchanged resync)."""
    old_wire = cast(JsonObject, _plain_json(old)) if isinstance(old, Mapping) else {}
    wanted = status.status_patch(old_wire, _status_wire(new))
    if not is_noop(old_wire, wanted):
        patch["status"] = wanted


def _plain_json(value: Any) -> Any:
    """A kopf view (nested mappings) as plain dicts and lists, for patch arithmetic."""
    if isinstance(value, Mapping):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(v) for v in value]
    return value


def _ready_condition_reason(raw: Any) -> str | None:
    if not isinstance(raw, Mapping):
        return None
    for c in raw.get("conditions") or []:
        if isinstance(c, Mapping) and c.get("type") == "Ready":
            return f"{c.get('status')}/{c.get('reason')}"
    return None


# -------------------------------------------------------------------------------------- Models
@dataclass(frozen=True)
class PreparedModel:
    """What fetching and reading a Model's artifacts found."""

    info: status.ArtifactInfo
    profile: profiles.BuiltProfile | None


def prepare_model(source: ArtifactSource, model: Model) -> PreparedModel:
    """Fetch, verify and read a Model's artifact and reference; build its profile (blocking).

    Everything lands in a temporary folder removed before returning: the operator keeps no copy.

    Raises:
        PermanentFailure: see ``artifacts`` and ``profiles`` for the reasons.
        TemporaryFailure: an artifact cannot be fetched now.
    """
    spec = model.spec
    with tempfile.TemporaryDirectory(prefix="driftline-model-") as tmp:
        dest = Path(tmp)
        path = source.fetch(
            spec.source.uri,
            spec.source.sha256,
            dest,
            name="model.onnx",
            limit=MAX_MODEL_BYTES,
            what="source",
        )
        opset, signature = read_graph(path)
        info = status.ArtifactInfo(spec.source.sha256, path.stat().st_size, opset, signature)
        check_features(spec, signature)
        if spec.reference is None:
            return PreparedModel(info, None)
        reference = source.fetch(
            spec.reference.uri,
            spec.reference.sha256,
            dest,
            name=profiles.reference_file_name(spec.reference.uri),
            limit=profiles.MAX_REFERENCE_BYTES,
            what="reference",
        )
        built = profiles.build(
            spec, signature, reference, spec.reference.sha256, spec.source.sha256, model=path
        )
        return PreparedModel(info, built)


async def _profile_lost(ctx: Context, model: Model) -> bool:
    """Whether a Ready Model's profile ConfigMap is gone (then it is rebuilt, e.g. on resume)."""
    name = model.status.profile_config_map if model.status is not None else None
    if name is None:
        return False
    namespace = model.metadata.namespace or "default"
    return await ctx.cluster.get("v1", "ConfigMap", namespace, name) is None


def model_backoff(ctx: Context, retry: int) -> float:
    """Seconds before the next attempt after ``retry`` temporary failures (exponential, capped)."""
    return float(min(MAX_MODEL_BACKOFF, ctx.settings.temporary_error_delay * 2 ** min(retry, 16)))


async def reconcile_model(
    ctx: Context, body: Mapping[str, Any], patch: kopf.Patch, event_body: kopf.Body, retry: int = 0
) -> None:
    """Verify a Model's artifacts, store its profile, write its status; raise the mapped error."""
    raw = _plain(body)
    meta = raw.get("metadata") or {}
    generation = meta.get("generation")
    now = ctx.clock()
    try:
        model = Model.from_manifest(raw)
    except pydantic.ValidationError as e:
        error = _invalid(e, "Model")
        _set_status(patch, raw.get("status"), status.model_failed(None, generation, error, now))
        kopf.warn(event_body, reason=error.reason, message=error.message)
        ctx.metrics.reconcile_errors.labels("Model", error.reason).inc()
        raise kopf_error(error) from None
    name, namespace = model.metadata.name, model.metadata.namespace or "default"
    if _stalled_for_generation(raw):
        return  # immutable: failed for good for this generation already
    if status.is_model_ready(model) and not await _profile_lost(ctx, model):
        return  # immutable: verified for this generation, its profile in place
    try:
        prepared = await asyncio.to_thread(prepare_model, ctx.artifacts, model)
        stored: status.ProfileInfo | None = None
        if prepared.profile is not None:
            built = prepared.profile
            owner = owner_reference(
                names.API_VERSION, names.MODEL.kind, name, str(meta.get("uid", ""))
            )
            manifest = profiles.config_map(
                name,
                namespace,
                built,
                model.spec.reference.sha256 if model.spec.reference else "",
                model.spec.source.sha256,
            )
            await ctx.cluster.store(manifest, owner, names.ANNOTATION_PROFILE_SHA256)
            stored = status.ProfileInfo(
                names.profile_config_map_name(name),
                built.size_bytes,
                built.rows,
                built.grid_points,
                built.prediction,
            )
    except TemporaryFailure as error:
        error.delay = model_backoff(ctx, retry)
        _set_status(patch, raw.get("status"), status.model_pending(model, error, now))
        ctx.metrics.reconcile_errors.labels("Model", error.reason).inc()
        raise kopf_error(error) from None
    except PermanentFailure as error:
        _set_status(patch, raw.get("status"), status.model_failed(model, generation, error, now))
        kopf.warn(event_body, reason=error.reason, message=error.message)
        ctx.metrics.reconcile_errors.labels("Model", error.reason).inc()
        raise kopf_error(error) from None
    new = status.model_ready(model, prepared.info, now, stored)
    _set_status(patch, raw.get("status"), new)
    kopf.info(event_body, reason="ModelReady", message=new.message or "verified")


# ------------------------------------------------------------------------------ DriftMonitors
def _status_write_only(body: Mapping[str, Any]) -> bool:
    """Whether a DriftMonitor's status already observed its spec's generation (a status write)."""
    meta, st = body.get("metadata") or {}, body.get("status") or {}
    generation = meta.get("generation")
    return generation is not None and st.get("observedGeneration") == generation


async def evaluate_drift_monitor(
    ctx: Context, body: Mapping[str, Any], patch: kopf.Patch, event_body: kopf.Body
) -> None:
    """Judge a due DriftMonitor's window; write its status, an Event on a transition, metrics.

    ``action: rollback`` aborts the rollout of a drifted canary/shadow (the ``abort`` command);
    ``retrain`` is recorded only (status message, breach counter by action).
    """
    raw = _plain(body)
    try:
        monitor = DriftMonitor.from_manifest(raw)
    except pydantic.ValidationError:
        return  # the admission validation names the problem; nothing to evaluate
    now = ctx.clock()
    if ctx.fleet is None or not drift_status.due(monitor, now):
        return
    new, deployment = await drift_controller.evaluate(ctx.cluster, ctx.fleet, monitor, now)
    namespace, name = monitor.metadata.namespace or "default", monitor.metadata.name
    change = drift_status.transition(monitor.status, new)
    if change == "DriftDetected":
        action = monitor.spec.action
        ctx.metrics.drift_breaches.labels(namespace, name, action).inc()
        message = new.message or "drift detected"
        if action == "rollback":
            done = await drift_controller.rollback(
                ctx.cluster, monitor, deployment, now, secrets.token_hex(3)
            )
            message += f" (action rollback: {done})"
        elif action == "retrain":
            message += " (action retrain: recorded; no RetrainPolicy controller exists yet)"
        new = new.model_copy(update={"last_action": now, "message": message})
        kopf.warn(event_body, reason=change, message=new.message or "drift detected")
    elif change == "DriftRecovered":
        kopf.info(event_body, reason=change, message=new.message or "no drift")
    if new.score is not None:
        ctx.metrics.drift_score.labels(namespace, name).set(new.score)
    _set_status(patch, raw.get("status"), new)


# --------------------------------------------------------------------------------- Deployments
async def _load_models(ctx: Context, namespace: str, wanted: tuple[str, ...]) -> dict[str, Model]:
    models: dict[str, Model] = {}
    for name in wanted:
        raw = ctx.observed.model(namespace, name)
        if raw is None:  # not seen by the Model watch yet
            raw = await ctx.cluster.get(names.API_VERSION, names.MODEL.kind, namespace, name)
        if raw is None:
            continue
        try:
            models[name] = Model.from_manifest(raw)
        except pydantic.ValidationError:
            continue  # an invalid Model is never served; its own status says why
    return models


async def drift_monitor_for(cluster: Cluster, namespace: str, name: str) -> DriftMonitorSpec | None:
    """The spec of the DriftMonitor watching this Deployment (the first by name), if any.

    An invalid DriftMonitor is skipped (its own validation names the problem); several
    DriftMonitors on one Deployment: the first by name sets the sidecars' flags.
    """
    found: list[DriftMonitor] = []
    for raw in await cluster.list_objects(
        names.API_VERSION, names.DRIFT_MONITOR.kind, namespace, {}
    ):
        try:
            monitor = DriftMonitor.from_manifest(raw)
        except pydantic.ValidationError:
            continue
        if monitor.spec.deployment == name:
            found.append(monitor)
    found.sort(key=lambda m: m.metadata.name)
    return found[0].spec if found else None


def monitor_targets(*specs: object) -> list[str]:
    """The Deployments the DriftMonitor specs name (current, old and new spec), deduplicated.

    Lenient: a spec that is not an object or names no Deployment contributes nothing (an invalid
    DriftMonitor is skipped by the reconcile anyway).
    """
    found: list[str] = []
    for spec in specs:
        name = spec.get("deployment") if isinstance(spec, Mapping) else None
        if isinstance(name, str) and name and name not in found:
            found.append(name)
    return found


async def _child_ready(ctx: Context, namespace: str, child: str) -> int:
    """A child Deployment's ready pods: as its watch last saw them, else read from the API."""
    seen = ctx.observed.ready(namespace, child)
    if seen is not None:
        return seen
    raw = await ctx.cluster.get("apps/v1", "Deployment", namespace, child)
    return ready_replicas(raw) if raw is not None else 0


async def _ready_pods(
    ctx: Context, namespace: str, topology: plan.Topology, created: Collection[str] = ()
) -> dict[str, int]:
    """Ready pods per variant role and ``router`` (children just ``created`` have none)."""
    wanted: dict[str, str] = {
        v.role: names.variant_name(topology.name, v.role) for v in topology.variants
    }
    wanted[names.COMPONENT_ROUTER] = names.router_name(topology.name)
    return {
        role: 0 if child in created else await _child_ready(ctx, namespace, child)
        for role, child in wanted.items()
    }


async def _rolled_out(
    ctx: Context, deployment: Deployment, state: rollout.RolloutState
) -> dict[str, str]:
    """The readiness fact for ``rollout.step``: the Model each slot is fully rolled out on.

    Read only while ``Promoting`` (the only stage that waits on it): one GET per slot then, none
    in the steady state. ``stable``: ``<dep>-stable`` fully rolled out
    (``status.rolled_out_model``); ``canary`` (while it scales up before taking 100%): the same,
    with at least the full-size pod count ready. A slot still rolling is absent.
    """
    if state.stage != rollout.Stage.PROMOTING:
        return {}
    namespace = deployment.metadata.namespace or "default"
    name = deployment.metadata.name
    slots = {"stable": 0}
    if state.weight < 100 and not state.reverting:
        slots["canary"] = plan.full_size(deployment)
    facts: dict[str, str] = {}
    for role, min_ready in slots.items():
        child = await ctx.cluster.get(
            "apps/v1", "Deployment", namespace, names.variant_name(name, role)
        )
        model = status.rolled_out_model(child, min_ready)
        if model is not None:
            facts[role] = model
    return facts


async def _hold_unready_variants(
    ctx: Context, namespace: str, topology: plan.Topology, manifests: list[Manifest]
) -> list[Manifest]:
    """Route nothing to a canary or shadow without a ready pod yet.

    Its Service has no endpoints until then, so the router's requests (or mirrored copies) to it
    would be refused and count against it before it ever served: a canary's share stays on
    stable, a shadow gets no copies. Only the route table changes; the variant's Deployment,
    Service and autoscaler are applied as planned.
    """
    canary, shadow = topology.variant("canary"), topology.variant("shadow")
    unready: set[str] = set()
    for variant in (canary, shadow):
        if variant is None or (variant.weight == 0 and variant.mirror_percent == 0):
            continue
        if await _child_ready(ctx, namespace, names.variant_name(topology.name, variant.role)) == 0:
            unready.add(variant.role)
    if not unready:
        return manifests
    moved = canary.weight if canary is not None and "canary" in unready else 0

    def held(v: plan.VariantPlan) -> plan.VariantPlan:
        if v.role in unready:
            return replace(v, weight=0, mirror_percent=0)
        return replace(v, weight=v.weight + moved) if v.role == "stable" else v

    table = render.router.config_map(
        replace(topology, variants=tuple(held(v) for v in topology.variants))
    )
    return [table if key_of(m) == key_of(table) else m for m in manifests]


def _events(event_body: kopf.Body, decisions: Sequence[rollout.Decision]) -> None:
    """One Event per rollout decision (Warning for failures and rollbacks)."""
    for d in decisions:
        post = kopf.warn if d.warning else kopf.info
        post(event_body, reason=d.kind.value, message=f"{d.reason}: {d.message}"[:1024])


def _condition_event(event_body: kopf.Body, old: Any, new: DeploymentStatus) -> None:
    """An Event when the Ready condition changes (status or reason)."""
    if _ready_condition_reason(old) != _ready_condition_reason(_status_wire(new)):
        ready = new.condition("Ready")
        if ready is not None:
            post = kopf.info if ready.status == "True" else kopf.warn
            if ready.status != "True" and not conditions.is_true(new.conditions, "Stalled"):
                post = kopf.info  # progressing is normal, not a warning
            post(event_body, reason=ready.reason, message=ready.message)


def _commands(meta: Mapping[str, Any], where: str) -> list[rollout.Command]:
    """The rollout command in the object's annotation, if any (a malformed one is logged)."""
    annotations = meta.get("annotations") or {}
    value = annotations.get(names.ANNOTATION_COMMAND) if isinstance(annotations, Mapping) else None
    if not isinstance(value, str) or not value:
        return []
    try:
        return [rollout.parse_command(value)]
    except ValueError as e:
        log.warning("%s: ignoring annotation %s: %s", where, names.ANNOTATION_COMMAND, e)
        return []


async def _analyse(
    ctx: Context,
    namespace: str,
    name: str,
    state: rollout.RolloutState,
    policy: rollout.Policy,
    now: datetime,
) -> analysis.AnalysisResult | None:
    """Run one analysis tick when one is due (through the provider seam), else None."""
    request = rollout.analysis_request(state, policy)
    due = rollout.analysis_due(state, policy)
    if request is None or due is None or now < due:
        return None
    provider = ctx.provider(policy)
    candidate = analysis.Target(namespace, name, request.candidate_role, request.candidate_model)
    stable = analysis.Target(namespace, name, "stable", request.stable_model)
    result = await analysis.measure_and_judge(
        provider, candidate, stable, request.thresholds, at=now, shadow=request.shadow
    )
    for check in result.checks:
        ctx.metrics.analysis_results.labels(namespace, name, check.metric, check.verdict).inc()
        if check.value is not None:
            ctx.metrics.analysis_value.labels(namespace, name, check.metric).set(check.value)
        ctx.metrics.analysis_threshold.labels(namespace, name, check.metric).set(check.threshold)
    return result


async def reconcile_deployment(
    ctx: Context, body: Mapping[str, Any], patch: kopf.Patch, event_body: kopf.Body
) -> None:
    """Level-based reconcile of one Deployment; see the module docstring."""
    raw = _plain(body)
    now = ctx.clock()
    meta = raw.get("metadata") or {}
    namespace, name = str(meta.get("namespace", "default")), str(meta.get("name", ""))
    started = time.monotonic()
    ctx.schedule(namespace, name, ctx.settings.resync_interval)  # errors: retry at the resync
    ctx.pokes(namespace, name).clear()  # this run sees every change poked so far
    try:
        try:
            deployment = Deployment.from_manifest(raw)
        except pydantic.ValidationError as e:
            raise _invalid(e, "Deployment") from None
        models = await _load_models(ctx, namespace, plan.referenced_models(deployment))
        policy = rollout_status.policy_from_spec(deployment.spec.rollout)
        state = rollout_status.state_from_status(deployment.status, policy)
        target = deployment.spec.model
        desired = target if status.is_model_ready(models.get(target)) else None
        result = await _analyse(ctx, namespace, name, state, policy, now)
        state, decisions = rollout.step(
            state,
            policy,
            desired,
            now=now,
            analysis=result,
            commands=_commands(meta, f"{namespace}/{name}"),
            rolled_out=await _rolled_out(ctx, deployment, state),
        )
        stepped = rollout_status.write_status(
            deployment.status,
            state,
            decisions,
            policy,
            now=now,
            generation=deployment.metadata.generation,
        )
        _events(event_body, decisions)
        for d in decisions:
            if d.rollback:
                ctx.metrics.rollbacks.labels(namespace, name, d.reason).inc()
        if stepped.stable_model is None:
            found = models.get(target)
            why = "was not found" if found is None else "is not Ready"
            pending = f"Model {target!r} {why}"
            new = status.deployment_waiting(deployment, pending, now)
            _set_status(patch, raw.get("status"), new)
            _condition_event(event_body, raw.get("status"), new)
            raise DependencyNotReady(pending, delay=ctx.settings.resync_interval)
        stepped_dep = deployment.model_copy(update={"status": stepped})
        drift = await drift_monitor_for(ctx.cluster, namespace, name)
        topology = plan.desired(stepped_dep, models, drift=drift)
        uid = str(meta.get("uid", ""))
        owner = owner_reference(names.API_VERSION, names.DEPLOYMENT.kind, name, uid)
        manifests = render.manifests(topology, owner, ctx.settings.image)
        manifests = await _hold_unready_variants(ctx, namespace, topology, manifests)
        applied = await ctx.cluster.apply(manifests, owner)
        await ctx.cluster.prune(
            namespace,
            names.child_labels(name),
            keep=[key_of(m) for m in manifests],
            kinds=render.CHILD_KINDS,
            owner_uid=uid,
        )
        created = {
            r.key.name for r in applied if r.action == "created" and r.key.kind == "Deployment"
        }
        ready = await _ready_pods(ctx, namespace, topology, created)
        new = status.deployment_status(deployment, stepped, topology, ready, now)
        _set_status(patch, raw.get("status"), new)
        _condition_event(event_body, raw.get("status"), new)
        ctx.metrics.set_phase(namespace, name, new.phase or "Progressing")
        ctx.metrics.set_weights(namespace, name, topology.weights)
        wake = rollout.wake_at(state, policy, now)
        ctx.schedule(
            namespace, name, cadence.next_due_in_s(wake, now, ctx.settings.resync_interval)
        )
    except OperatorError as error:
        ctx.metrics.reconcile_errors.labels("Deployment", error.reason).inc()
        if isinstance(error, PermanentFailure):
            old = None
            try:
                old = DeploymentStatus.model_validate(raw.get("status") or {})
            except pydantic.ValidationError:
                old = None
            new = status.deployment_failed(raw, old, error, now)
            _set_status(patch, raw.get("status"), new)
            _condition_event(event_body, raw.get("status"), new)
            ctx.metrics.set_phase(namespace, name, "Degraded")
        raise kopf_error(error) from None
    finally:
        ctx.metrics.reconcile_duration.labels("Deployment").observe(time.monotonic() - started)


def _stalled_for_generation(body: Mapping[str, Any]) -> bool:
    """Whether a permanent failure was already reported for this exact spec (no retry storm)."""
    raw_status = body.get("status")
    meta = body.get("metadata") or {}
    if not isinstance(raw_status, Mapping):
        return False
    if raw_status.get("observedGeneration") != meta.get("generation"):
        return False
    record = raw_status.get("rollout")
    if isinstance(record, Mapping) and record.get("drainUntil"):
        return False  # a rolled-back canary still drains: its end (and pruning) needs a resync
    return any(
        isinstance(c, Mapping) and c.get("type") == "Stalled" and c.get("status") == "True"
        for c in raw_status.get("conditions") or []
    )


# ---------------------------------------------------------------------------------- registry
async def _first_of(*waits: Awaitable[object], timeout: float) -> None:
    """Return when the first of ``waits`` completes or after ``timeout`` seconds (others end)."""
    tasks = [asyncio.ensure_future(w) for w in waits]
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()


_MANAGED = {names.LABEL_MANAGED_BY: names.MANAGED_BY_VALUE}
"""The label every child carries: what the child watch selects by."""


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    """Register every handler of the operator into ``registry``."""
    group, version = names.GROUP, names.VERSION
    models, deployments = names.MODEL.plural, names.DEPLOYMENT.plural

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, ctx.settings)

    # Credentials: the kubeconfig or the pod's service account, exactly as the kubernetes client
    # sees them (one source of truth for kopf and for our own API calls).
    kopf.on.login(registry=registry)(kopf.login_via_client)

    @kopf.on.resume(group, version, models, registry=registry)
    @kopf.on.create(group, version, models, registry=registry)
    @kopf.on.update(group, version, models, field="spec", registry=registry)
    async def model_changed(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
        await reconcile_model(ctx, body, patch, body, retry)

    @kopf.on.resume(group, version, deployments, registry=registry)
    @kopf.on.create(group, version, deployments, registry=registry)
    # Any change but status: spec, and the command annotation ``kubectl driftline`` sets.
    @kopf.on.update(group, version, deployments, registry=registry)
    async def deployment_changed(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        meta = body.get("metadata") or {}
        async with ctx.lock(str(meta.get("namespace")), str(meta.get("name"))):
            await reconcile_deployment(ctx, body, patch, body)

    tick = cadence.timer_tick_s(ctx.settings.resync_interval)

    # Ticks often (sharp: back to back), reconciles when due: at the rollout's next wake, one
    # resync after the last reconcile, or at once when poked (see ``cadence``).
    @kopf.timer(
        group,
        version,
        deployments,
        interval=tick,
        initial_delay=tick,
        sharp=True,
        registry=registry,
    )
    async def deployment_resync(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
        stopped = cast(kopf.DaemonStopped, kwargs["stopped"])  # kopf passes it to timers
        if _stalled_for_generation(body):
            return  # a permanent failure waits for a spec change, not for the clock
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        due, poked = ctx.due_at(namespace, name), ctx.pokes(namespace, name)
        sleep = cadence.tick_action(None if due is None else due - time.monotonic(), tick)
        if not poked.is_set() and (wait := cadence.listen_s(sleep, tick)) > 0:
            # Until due (a wake within this tick), poked, or the timer stops, whichever is first.
            await _first_of(poked.wait(), stopped.wait(), timeout=wait)
            if stopped or (sleep is None and not poked.is_set()):
                return
        async with ctx.lock(namespace, name):
            if not poked.is_set() and ctx.due_at(namespace, name) != due:
                return  # a change handler reconciled it meanwhile (and scheduled it anew)
            try:
                await reconcile_deployment(ctx, body, patch, body)
            except (kopf.TemporaryError, kopf.PermanentError) as e:
                log.info("resync of %s/%s: %s", meta.get("namespace"), meta.get("name"), e)

    # A DriftMonitor sets the sidecars' flags of the Deployment it names: any watch event of it
    # (added, modified, deleted: a raw event handler, as a delete without a finalizer calls no
    # delete handler) makes that Deployment due at the next timer tick (at most
    # ``cadence.MAX_TICK_S``); a spec update also wakes the Deployment it named before.
    monitors = names.DRIFT_MONITOR.plural

    async def wake(namespace: str, specs: Sequence[object]) -> None:
        for name in monitor_targets(*specs):
            # Under the lock: a reconcile in progress may have read the old DriftMonitor and
            # would overwrite an earlier schedule with its own (up to a resync away).
            async with ctx.lock(namespace, name):
                ctx.schedule(namespace, name, 0.0)

    @kopf.on.event(group, version, monitors, registry=registry)
    async def drift_monitor_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        if type == "MODIFIED" and _status_write_only(body):
            return  # the controller's own status write: the flags did not change
        await wake(str((body.get("metadata") or {}).get("namespace")), [body.get("spec")])

    @kopf.on.update(group, version, monitors, field="spec", registry=registry)
    async def drift_monitor_retargeted(body: kopf.Body, old: Any, **_: Any) -> None:
        await wake(str((body.get("metadata") or {}).get("namespace")), [old])

    @kopf.timer(group, version, monitors, interval=tick, initial_delay=tick, registry=registry)
    async def drift_monitor_tick(body: kopf.Body, patch: kopf.Patch, **_: Any) -> None:
        await evaluate_drift_monitor(ctx, body, patch, body)

    # The children's readiness has no event on their owner: watch them (our label) and poke the
    # owner when a child's ready pods change, so its status need not wait for the resync.
    @kopf.on.event("apps", "v1", "deployments", labels=_MANAGED, registry=registry)
    async def child_deployment_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        namespace = str((body.get("metadata") or {}).get("namespace"))
        seen = ctx.observed.child_event(namespace, body, deleted=type == "DELETED")
        if seen.owner is not None and seen.poke:
            ctx.poke(namespace, seen.owner)

    # Every reconcile reads the Models it serves: from this watch, not a GET each time.
    @kopf.on.event(group, version, models, registry=registry)
    async def model_event(body: kopf.Body, type: str | None, **_: Any) -> None:
        meta = body.get("metadata") or {}
        namespace, name = str(meta.get("namespace")), str(meta.get("name"))
        plain = None if type == "DELETED" else cast(JsonObject, _plain_json(_plain(body)))
        ctx.observed.model_event(namespace, name, plain)

    @kopf.on.delete(group, version, deployments, optional=True, registry=registry)
    def deployment_deleted(body: kopf.Body, **_: Any) -> None:
        meta = body.get("metadata") or {}
        ctx.metrics.forget(str(meta.get("namespace")), str(meta.get("name")))
        ctx.forget(str(meta.get("namespace")), str(meta.get("name")))
