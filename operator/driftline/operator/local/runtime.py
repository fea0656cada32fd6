"""The control loop of ``driftline up``: the operator's reconcile, with processes for pods.

Who uses it: the ``driftline up`` command builds one :class:`LocalRuntime` and runs it until
Ctrl-C, SIGTERM (``driftline down``) or an error; tests run it in-process.

Each tick (``settings.tick_s``), for each Deployment, exactly what the operator does, with the same
pure code:

1. commands from other terminals (``promote``, ``abort``, ``pause``, ``resume``, ``retry``,
   ``apply``) are picked up from the state directory;
2. when an analysis tick is due (:func:`driftline.operator.rollout.analysis_due`), the candidate
   and stable variants are measured through the shared HTTP provider
   (:class:`driftline.operator.analysis_http.HttpProvider`: this router's ``/stats`` and the
   variants' monitors) and judged (:func:`driftline.operator.analysis.measure_and_judge`);
3. :func:`driftline.operator.rollout.step` advances the rollout; the result is stored in the
   Deployment's status with :func:`driftline.operator.rollout_status.write_status`;
4. :func:`driftline.operator.plan.desired` turns spec + status into the topology, and the local
   actuator (:mod:`driftline.operator.local.actuator`) into processes and the router's table;
5. the status (variants with ready replica counts, the endpoint) is written to the state
   directory, and every decision is printed and appended to ``events.jsonl``.

The rollout state lives in the status files, as in a cluster it lives in ``status``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx

from driftline.operator import analysis, plan, rollout, rollout_status
from driftline.operator.analysis_http import Endpoints, HttpProvider
from driftline.operator.api import Deployment, Model
from driftline.operator.api.deployment import DeploymentStatus, VariantStatus
from driftline.operator.api.model import ModelStatus
from driftline.operator.errors import DependencyNotReady
from driftline.operator.local import actuator
from driftline.operator.local.manifests import Bundle, ManifestError, Source, parse_bundle
from driftline.operator.local.settings import LocalSettings
from driftline.operator.local.state import (
    CommandAnswer,
    CommandFile,
    StateDir,
    UpRecord,
    write_atomic,
)
from driftline.operator.local.supervisor import ChildSpec, Supervisor, free_port

__all__ = ["LocalRuntime", "now_utc"]

log = logging.getLogger(__name__)

ROUTER_STATS_MIN_WINDOW_S: Final = 5
"""Shortest router stats window asked for: a shorter one holds too few requests to judge."""


def now_utc() -> datetime:
    """The wall clock, timezone-aware (status times are RFC 3339 UTC)."""
    return datetime.now(UTC)


@dataclass
class _Verified:
    path: Path | None = None
    profile: Path | None = None
    error: str | None = None


PROFILE_TIMEOUT_S: Final = 120.0
"""Longest a reference profile build may take (a few seconds for the quickstart)."""


@dataclass
class _DeploymentRuntime:
    """What the loop remembers about one Deployment between ticks (not the rollout state)."""

    router_port: int
    table_version: int = 0
    last_table: dict[str, object] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    commands: list[CommandFile] = field(default_factory=list)


class LocalRuntime:
    """Runs a bundle of manifests as processes on this machine."""

    def __init__(
        self,
        settings: LocalSettings,
        bundle: Bundle,
        *,
        say: Callable[[str], None],
        sources: Sequence[str] = (),
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.settings = settings
        self.state = StateDir(settings.state_dir)
        self.bundle = bundle
        self._say = say
        self._sources = list(sources)
        self._clock = clock
        self.supervisor = Supervisor(
            self.state.logs_dir,
            max_restarts=settings.max_restarts,
            stop_timeout_s=settings.stop_timeout_s,
            ready_timeout_s=settings.ready_timeout_s,
            on_event=lambda m: self._say(f"process: {m}"),
        )
        self._http = httpx.AsyncClient(timeout=2.0)
        self._deployments: dict[str, _DeploymentRuntime] = {}
        self._verified: dict[str, _Verified] = {}
        self._generations: dict[str, int] = {}
        self._statuses: dict[str, DeploymentStatus] = {}
        self._said: dict[str, str] = {}

    # ------------------------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set; every child is stopped on the way out, whatever happens."""
        self.state.prepare()
        for stale in list(self.state.commands_dir.glob("*.json")):
            stale.unlink()  # commands left by an earlier run are not for this one
        self.state.write_up(UpRecord(pid=_pid(), started_at=self._clock(), manifests=self._sources))
        for name in self.bundle.deployments:
            self._generations[name] = 1
        self._record_objects()
        try:
            while not stop.is_set():
                await self.tick()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.tick_s)
        finally:
            self._say("stopping every process ...")
            self.supervisor.stop_all_now()
            self.state.write_processes(self.supervisor.records())
            await self.aclose()
            self.state.clear_up()
            self._say("stopped")

    async def aclose(self) -> None:
        """Close the HTTP clients (the children are stopped by :meth:`run`)."""
        await self.supervisor.aclose()
        await self._http.aclose()

    def _record_objects(self) -> None:
        """Store every object as applied, so the state directory lists all of them."""
        for model_name, model in self.bundle.models.items():
            if model_name not in self._verified:
                self.state.write_object("Model", model_name, model.to_manifest())
        for mon in self.bundle.monitors.values():
            self.state.write_object("DriftMonitor", mon.metadata.name, mon.to_manifest())
        for pol in self.bundle.policies.values():
            self.state.write_object("RetrainPolicy", pol.metadata.name, pol.to_manifest())

    async def tick(self) -> None:
        """One pass of the loop over every Deployment (see the module docstring)."""
        self._take_commands()
        await self.supervisor.check()
        for name in list(self.bundle.deployments):
            try:
                await self._reconcile(name)
            except DependencyNotReady as exc:
                self._set_message(name, str(exc))
        self._write_up()
        self.state.write_processes(self.supervisor.records())

    # ------------------------------------------------------------------------------ commands
    def _take_commands(self) -> None:
        for path, command in self.state.pending_commands():
            now = self._clock()
            if isinstance(command, str):
                self.state.answer(
                    path, CommandAnswer(id=path.stem, ok=False, message=command, done_at=now)
                )
                continue
            if command.verb == "apply":
                ok, message = self._apply(command)
                self.state.answer(
                    path, CommandAnswer(id=command.id, ok=ok, message=message, done_at=now)
                )
                continue
            target = command.target or ""
            if target not in self.bundle.deployments:
                self.state.answer(
                    path,
                    CommandAnswer(
                        id=command.id,
                        ok=False,
                        message=f"no Deployment {target!r} (running: "
                        f"{', '.join(sorted(self.bundle.deployments)) or 'none'})",
                        done_at=now,
                    ),
                )
                continue
            self._runtime(target).commands.append(command)
            path.unlink(missing_ok=True)  # answered after the step that applies it

    def _apply(self, command: CommandFile) -> tuple[bool, str]:
        docs = [(Source(Path("apply"), i), m) for i, m in enumerate(command.manifests)]
        try:
            incoming = parse_bundle_with(self.bundle, docs)
        except ManifestError as exc:
            return False, str(exc)
        changed = []
        for name, dep in incoming.deployments.items():
            old = self.bundle.deployments.get(name)
            if old is None or old.spec != dep.spec:
                self._generations[name] = self._generations.get(name, 0) + 1
                changed.append(f"Deployment {name} (generation {self._generations[name]})")
        for name, model in incoming.models.items():
            old_model = self.bundle.models.get(name)
            if old_model is not None and old_model.spec != model.spec:
                self._verified.pop(name, None)
            if old_model is None or old_model.spec != model.spec:
                changed.append(f"Model {name}")
        self.bundle = self.bundle.merged(incoming)
        self._record_objects()
        message = "applied: " + (", ".join(changed) if changed else "nothing changed")
        self._say(message)
        return True, message

    # ------------------------------------------------------------------------------ models
    async def _verify(self, name: str) -> Model | None:
        """The Model, verified and copied into the state directory once; None when it fails.

        Also verifies its reference data and builds the monitor's reference profile from it
        (``driftline profile``), so the variant gets a monitor; without a reference the variant
        runs without one (and says so).
        """
        model = self.bundle.models.get(name)
        if model is None:
            return None
        verified = self._verified.get(name)
        if verified is None:
            verified = await asyncio.to_thread(self._prepare, model)
            self._verified[name] = verified
            status = ModelStatus(
                phase="Ready" if verified.path else "Failed",
                message=verified.error or f"verified, copied to {verified.path}",
                verified_sha256=model.spec.source.sha256 if verified.path else None,
                profile=str(verified.profile) if verified.profile else None,
                observed_generation=1,
            )
            stored = model.model_copy(update={"status": status})
            self.state.write_object("Model", name, stored.to_manifest())
        return model if verified.path is not None else None

    def _prepare(self, model: Model) -> _Verified:
        """Fetch and verify the artifact and reference, build the profile (blocking: a thread)."""
        import subprocess

        from driftline.serving.fetch import FetchError, fetch

        name, spec = model.metadata.name, model.spec
        dest = self.state.models_dir / name
        try:
            path = fetch(spec.source.uri, spec.source.sha256, dest, name="model.onnx")
        except FetchError as exc:
            self._say(f"Model {name}: cannot be used: {exc}")
            return _Verified(error=str(exc))
        self._say(f"Model {name}: verified sha256 {spec.source.sha256[:12]}…")
        if spec.reference is None:
            self._say(f"Model {name}: no reference data: its variants run without a monitor")
            return _Verified(path=path)
        try:
            suffix = Path(spec.reference.uri).suffix or ".npz"
            reference = fetch(
                spec.reference.uri, spec.reference.sha256, dest, name=f"reference{suffix}"
            )
        except FetchError as exc:
            self._say(f"Model {name}: reference data unusable, no monitor: {exc}")
            return _Verified(path=path)
        profile = dest / "profile.json"
        argv = [
            *actuator.DRIFTLINE,
            "profile",
            "--reference",
            str(reference),
            "--out",
            str(profile),
            "--model-sha256",
            spec.source.sha256,
        ]
        if spec.features:
            features = dest / "features.json"
            doc = [
                {k: v for k, v in f.model_dump(mode="json").items() if v is not None}
                for f in spec.features
            ]
            write_atomic(features, json.dumps(doc).encode())
            argv += ["--features", str(features)]
        try:
            done = subprocess.run(
                argv, capture_output=True, timeout=PROFILE_TIMEOUT_S, check=False, text=True
            )
        except subprocess.TimeoutExpired:
            self._say(f"Model {name}: profile build timed out: its variants run without a monitor")
            return _Verified(path=path)
        if done.returncode != 0:
            self._say(
                f"Model {name}: profile build failed, no monitor: {done.stderr.strip()[-300:]}"
            )
            return _Verified(path=path)
        self._say(f"Model {name}: reference profile built ({done.stdout.strip()})")
        return _Verified(path=path, profile=profile)

    # ------------------------------------------------------------------------------ reconcile
    def _runtime(self, name: str) -> _DeploymentRuntime:
        rt = self._deployments.get(name)
        if rt is None:
            port = self.settings.port if not self._deployments and self.settings.port else 0
            rt = _DeploymentRuntime(router_port=port or free_port())
            self._deployments[name] = rt
        return rt

    def _deployment(self, name: str) -> Deployment:
        dep = self.bundle.deployments[name]
        meta = dep.metadata.model_copy(
            update={"generation": self._generations.get(name, 1), "namespace": "default"}
        )
        return dep.model_copy(update={"metadata": meta, "status": self._statuses.get(name)})

    def _set_message(self, name: str, message: str) -> None:
        """Put a problem in the status message; printed once, not on every tick."""
        if self._said.get(name) != message:
            self._say(f"Deployment {name}: {message}")
            self._said[name] = message
        status = self._statuses.get(name) or DeploymentStatus()
        self._statuses[name] = status.model_copy(update={"message": message})
        self._store(name)

    async def _reconcile(self, name: str) -> None:
        rt = self._runtime(name)
        dep = self._deployment(name)
        policy = rollout_status.policy_from_spec(dep.spec.rollout)
        state = rollout_status.state_from_status(dep.status, policy)
        desired_model = await self._verify(dep.spec.model)  # may take seconds, once per Model
        now = self._clock()
        problem = None
        if desired_model is None:
            verified = self._verified.get(dep.spec.model)
            why = verified.error if verified else "it is not in the manifests"
            problem = f"Model {dep.spec.model} cannot be served: {why}"
            self._set_message(name, problem)
            if state.stable is None:
                return
        result = None
        request = rollout.analysis_request(state, policy)
        due = rollout.analysis_due(state, policy)
        if request is not None and due is not None and now >= due:
            result = await self._analyse(name, rt, request, policy, now)
        commands = [rollout.Command(rollout.cast_verb(c.verb), c.id) for c in rt.commands]
        applied, rt.commands = rt.commands, []
        state, decisions = rollout.step(
            state,
            policy,
            dep.spec.model if desired_model is not None else state.stable,
            now=now,
            analysis=result,
            commands=commands,
        )
        status = rollout_status.write_status(
            dep.status, state, decisions, policy, now=now, generation=dep.metadata.generation
        )
        self._statuses[name] = status
        for decision in decisions:
            self._announce(name, decision, now)
        for command in applied:
            mine = [d for d in decisions if d.kind != rollout.DecisionKind.COMMAND_IGNORED]
            ignored = [d for d in decisions if d.kind == rollout.DecisionKind.COMMAND_IGNORED]
            ok = not ignored
            text = "; ".join(f"{d.kind.value}: {d.message}" for d in (ignored or mine)) or (
                f"{command.verb}: nothing to do"
            )
            self.state.answer(
                self.state.commands_dir / f"{command.id}.json",
                CommandAnswer(id=command.id, ok=ok, message=text, done_at=now),
            )
        models: dict[str, Model] = {}
        for model_name in plan.referenced_models(self._deployment(name)):
            verified_model = await self._verify(model_name)
            if verified_model is not None:
                models[model_name] = verified_model
        topology = plan.desired(self._deployment(name), models, drain_slots=False)
        await self._actuate(name, rt, topology, rollout.traffic(state).draining)
        self._statuses[name] = self._observed(name, rt, topology)
        if problem is not None:
            self._set_message(name, problem)
        else:
            self._store(name)

    async def _analyse(
        self,
        name: str,
        rt: _DeploymentRuntime,
        request: rollout.AnalysisRequest,
        policy: rollout.Policy,
        now: datetime,
    ) -> analysis.AnalysisResult:
        router = f"http://127.0.0.1:{rt.router_port}"

        def resolve(target: analysis.Target) -> Endpoints:
            monitors = tuple(
                f"http://127.0.0.1:{rt.ports[child]}"
                for child in rt.ports
                if child == actuator.monitor_name(name, target.model)
            )
            return Endpoints(routers=(router,), monitors=monitors)

        window = max(ROUTER_STATS_MIN_WINDOW_S, round(policy.interval_s))
        provider = HttpProvider(self._http, resolve, window_s=window)
        candidate = analysis.Target(
            "default", name, request.candidate_role, request.candidate_model
        )
        stable = analysis.Target("default", name, "stable", request.stable_model)
        return await analysis.measure_and_judge(
            provider, candidate, stable, request.thresholds, at=now, shadow=request.shadow
        )

    def _announce(self, name: str, decision: rollout.Decision, now: datetime) -> None:
        line = f"{decision.kind.value}: {decision.message}" if decision.message else decision.kind
        self._say(f"Deployment {name}: {line}")
        self.state.append_event(
            {
                "time": now.isoformat(),
                "deployment": name,
                "kind": decision.kind.value,
                "reason": decision.reason,
                "message": decision.message,
                "from": decision.from_model,
                "to": decision.to_model,
                "weight": decision.weight,
            }
        )

    # ------------------------------------------------------------------------------ actuation
    def _port(self, rt: _DeploymentRuntime, child: str) -> int:
        port = rt.ports.get(child)
        if port is None:
            port = rt.ports[child] = free_port()
        return port

    async def _actuate(
        self,
        name: str,
        rt: _DeploymentRuntime,
        topology: plan.Topology,
        draining: tuple[str, ...],
    ) -> None:
        wanted = actuator.models_in(topology, draining)
        keep: set[str] = set()
        endpoints: dict[plan.Role, actuator.VariantEndpoints] = {}
        for model_name, role in wanted.items():
            verified = self._verified.get(model_name)
            if verified is None or verified.path is None:
                continue
            count = actuator.replicas(topology, role) if role is not None else 1
            monitor_url = self._ensure_monitor(name, rt, topology, model_name, verified, keep)
            ready: list[str] = []
            for i in range(max(count, 1) if role is not None else self._running(name, model_name)):
                child = actuator.server_name(name, model_name, i)
                keep.add(child)
                if self.supervisor.state(child) in (None, "stopped"):
                    port = self._port(rt, child)
                    self.supervisor.start(
                        ChildSpec(
                            name=child,
                            role="serve",
                            deployment=name,
                            argv=actuator.serve_argv(
                                topology,
                                model=model_name,
                                role=role or "stable",
                                model_path=verified.path,
                                port=port,
                                monitor_url=monitor_url,
                            ),
                            port=port,
                            probe=actuator.SERVER_PROBE,
                            variant=role,
                            model=model_name,
                        )
                    )
                if self.supervisor.state(child) == "ready":
                    ready.append(f"http://127.0.0.1:{rt.ports[child]}")
            if role is not None:
                monitor_ready = monitor_url is not None and (
                    self.supervisor.state(actuator.monitor_name(name, model_name)) == "ready"
                )
                endpoints[role] = actuator.VariantEndpoints(
                    tuple(ready), monitor_url if monitor_ready else None
                )
        table = actuator.route_table(topology, endpoints, rt.table_version + 1)
        router = actuator.router_name(name)
        keep.add(router)
        if table is not None and _without_version(table) != _without_version(rt.last_table):
            rt.table_version += 1
            table["version"] = rt.table_version
            write_atomic(self.state.route_table_file(name), json.dumps(table, indent=2).encode())
            rt.last_table = table
        if rt.last_table is not None and self.supervisor.state(router) in (None, "stopped"):
            self.supervisor.start(
                ChildSpec(
                    name=router,
                    role="route",
                    deployment=name,
                    argv=actuator.route_argv(self.state.route_table_file(name), rt.router_port),
                    port=rt.router_port,
                    probe=actuator.ROUTER_PROBE,
                )
            )
        stale = [
            c
            for c in self.supervisor.names()
            if c not in keep and (spec := self.supervisor.spec(c)) and spec.deployment == name
        ]
        if stale:
            await self.supervisor.stop(stale)

    def _ensure_monitor(
        self,
        name: str,
        rt: _DeploymentRuntime,
        topology: plan.Topology,
        model: str,
        verified: _Verified,
        keep: set[str],
    ) -> str | None:
        """Start the variant's monitor when it has a profile; its URL (None without one)."""
        if verified.profile is None or not topology.monitor_enabled:
            return None
        child = actuator.monitor_name(name, model)
        keep.add(child)
        port = self._port(rt, child)
        if self.supervisor.state(child) in (None, "stopped"):
            dep = self.bundle.deployments[name]
            self.supervisor.start(
                ChildSpec(
                    name=child,
                    role="monitor",
                    deployment=name,
                    argv=actuator.monitor_argv(
                        topology,
                        profile=verified.profile,
                        port=port,
                        min_samples=dep.spec.rollout.analysis.min_samples,
                    ),
                    port=port,
                    probe=actuator.MONITOR_PROBE,
                    model=model,
                )
            )
        return f"http://127.0.0.1:{port}"

    def _running(self, deployment: str, model: str) -> int:
        prefix = f"{deployment}-{model}-"
        return sum(
            1
            for c in self.supervisor.names()
            if c.startswith(prefix) and c[len(prefix) :].isdigit()
        )

    def _observed(
        self, name: str, rt: _DeploymentRuntime, topology: plan.Topology
    ) -> DeploymentStatus:
        status = self._statuses.get(name) or DeploymentStatus()
        variants = []
        for v in topology.variants:
            want = actuator.replicas(topology, v.role)
            ready = sum(
                1
                for i in range(want)
                if self.supervisor.state(actuator.server_name(name, v.model.name, i)) == "ready"
            )
            weight = v.mirror_percent if v.role == "shadow" else v.weight
            variants.append(
                VariantStatus(
                    name=v.role,
                    model=v.model.name,
                    weight=weight,
                    replicas=want,
                    ready_replicas=ready,
                )
            )
        endpoint = None
        if self.supervisor.state(actuator.router_name(name)) == "ready":
            endpoint = f"http://127.0.0.1:{rt.router_port}/v2/models/{name}/infer"
        if endpoint != status.endpoint:
            self._say(
                f"Deployment {name}: serving at {endpoint}"
                if endpoint
                else f"Deployment {name}: its router is not ready"
            )
        return status.model_copy(update={"variants": variants, "endpoint": endpoint})

    def _store(self, name: str) -> None:
        dep = self._deployment(name)
        self.state.write_object("Deployment", name, dep.to_manifest())

    def _write_up(self) -> None:
        record = self.state.read_up()
        urls = {n: f"http://127.0.0.1:{rt.router_port}" for n, rt in self._deployments.items()}
        if record is None or record.router_urls != urls:
            self.state.write_up(
                UpRecord(
                    pid=_pid(),
                    started_at=record.started_at if record else self._clock(),
                    router_urls=urls,
                    manifests=record.manifests if record else [],
                )
            )


def _pid() -> int:
    import os

    return os.getpid()


def _without_version(table: Mapping[str, object] | None) -> dict[str, object] | None:
    if table is None:
        return None
    return {k: v for k, v in table.items() if k != "version"}


def parse_bundle_with(current: Bundle, docs: Sequence[tuple[Source, Mapping[str, Any]]]) -> Bundle:
    """Parse applied manifests; a Deployment may name a Model already running."""
    return parse_bundle(docs, known_models=set(current.models))
