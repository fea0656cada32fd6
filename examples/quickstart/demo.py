"""The quickstart, end to end on this machine, narrated as a timeline (``make demo``).

What it does, in order (each step prints what it is waiting for and how long it took):

1. trains the three quickstart models (``train.py``; skipped when the artifacts already match the
   manifests' digests);
2. ``driftline up`` with the quickstart manifests (durations shortened so the demo fits in about
   two minutes: the shadow phase, the canary steps and the analysis interval are seconds, not
   minutes) and waits until model v1 answers through the router;
3. ``driftline load`` replays ``traffic.csv`` through the router, with the labels sent back as
   delayed feedback;
4. ``driftline apply`` switches the Deployment to v2: shadow, canary steps, promoted on the
   numbers;
5. ``driftline apply`` switches it to v3 (trained on shuffled labels): its shadow answers disagree
   with v2's, the analysis fails and it is rolled back, with the reason;
6. the replay switches to ``traffic-shifted.csv``: the stable variant's monitor verdict turns to
   drift, naming the features;
7. prints a summary table of what happened and where to look, then ``driftline down``.

Every process is stopped on the way out, also on Ctrl-C or an error. ``--short`` (or
``DRIFTLINE_DEMO_SHORT=1``) is the CI mode: fewer samples, shorter holds, same steps.

Usage: ``python examples/quickstart/demo.py [--short] [--state-dir DIR] [--port N]
[--keep-running]`` (``make demo DEMO_ARGS=--keep-running``)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
DRIFTLINE = (sys.executable, "-m", "driftline.operator")
CATEGORIES = (
    "--categories",
    "region=eu,us,apac,latam,africa",
    "--categories",
    "plan=basic,pro,enterprise",
)


@dataclass(frozen=True)
class Pace:
    """How long things take: the full demo or the CI short mode."""

    rate: int
    shadow: dict[str, Any]
    steps: list[dict[str, Any]]
    interval: str
    min_samples: int
    window: int


FULL = Pace(
    rate=60,
    shadow={"percent": 100, "duration": "8s", "minSamples": 200, "minAgreement": 0.75},
    steps=[
        {"weight": 20, "pause": "5s"},
        {"weight": 50, "pause": "5s"},
        {"weight": 100, "pause": "4s"},
    ],
    interval="3s",
    min_samples=50,
    window=400,
)
SHORT = Pace(
    rate=60,
    shadow={"percent": 100, "duration": "3s", "minSamples": 150, "minAgreement": 0.75},
    steps=[{"weight": 50, "pause": "3s"}, {"weight": 100, "pause": "2s"}],
    interval="2s",
    min_samples=30,
    window=200,
)


@dataclass
class Timeline:
    """What happened, for the summary table."""

    started: float = field(default_factory=time.monotonic)
    rows: list[tuple[str, str, str]] = field(default_factory=list)

    def say(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {text}", flush=True)

    def record(self, step: str, outcome: str, evidence: str) -> None:
        self.rows.append((f"{time.monotonic() - self.started:5.0f}s", step, outcome))
        self.say(f"==> {step}: {outcome} ({evidence})")


class DemoError(RuntimeError):
    """A step did not happen in time; the message says which and where to look."""


def _get_json(url: str, timeout: float = 2.0) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:  # 127.0.0.1 only
            return json.loads(answer.read())
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _run(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*DRIFTLINE, *args, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _wait(
    what: str,
    condition: Callable[[], bool],
    timeout_s: float,
    up: subprocess.Popen[bytes],
    tl: Timeline,
) -> None:
    tl.say(f"waiting (at most {timeout_s:.0f}s): {what}")
    started = time.monotonic()
    deadline = started + timeout_s
    next_note = started + 5.0
    while not condition():
        if time.monotonic() >= next_note:
            next_note += 5.0
            tl.say(f"    ... {time.monotonic() - started:.0f}s: {what}")
        if up.poll() is not None:
            raise DemoError(f"driftline up exited with {up.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise DemoError(f"{what}: not within {timeout_s:.0f}s")
        time.sleep(0.2)


def _deployment(state: Path) -> dict[str, Any]:
    try:
        doc = json.loads((state / "objects" / "deployment" / "churn.json").read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _status(state: Path) -> dict[str, Any]:
    status = _deployment(state).get("status")
    return status if isinstance(status, dict) else {}


class Events:
    """Prints the new lines of events.jsonl (the decisions) as they appear."""

    def __init__(self, state: Path, tl: Timeline) -> None:
        self.path = state / "events.jsonl"
        self.seen = 0
        self.tl = tl

    def show(self) -> list[dict[str, Any]]:
        try:
            lines = self.path.read_text().splitlines()
        except OSError:
            return []
        new = [json.loads(line) for line in lines[self.seen :] if line.strip()]
        self.seen = len(lines)
        for e in new:
            self.tl.say(
                f"    decision: {e['kind']:<13} {e.get('to') or ''}  {e['reason']}: {e['message']}"
            )
        return new


def _manifests(out: Path, artifacts: Path, pace: Pace, model: str) -> Path:
    """The quickstart manifests with absolute artifact URIs and the demo's pace."""
    out.mkdir(parents=True, exist_ok=True)
    for src in sorted((HERE / "manifests").glob("*.yaml")):
        doc = yaml.safe_load(src.read_text())
        if doc["kind"] == "Model":
            for key in ("source", "reference"):
                name = Path(doc["spec"][key]["uri"]).name
                doc["spec"][key]["uri"] = f"file://{artifacts / name}"
        if doc["kind"] == "Deployment":
            doc["spec"]["model"] = model
            rollout = doc["spec"]["rollout"]
            rollout["shadow"] = pace.shadow
            rollout["steps"] = pace.steps
            rollout["analysis"] = {
                "interval": pace.interval,
                "minSamples": pace.min_samples,
                "maxErrorRate": 0.02,
                "noData": "pause",
            }
            rollout["progressDeadline"] = "90s"
            doc["spec"]["monitor"] = {"enabled": True, "window": pace.window}
        (out / src.name).write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def _artifacts(tl: Timeline) -> Path:
    """Train the models unless the artifacts already match the manifests' digests."""
    artifacts = HERE / "artifacts"
    wanted = {}
    for src in (HERE / "manifests").glob("model-*.yaml"):
        spec = yaml.safe_load(src.read_text())["spec"]
        for key in ("source", "reference"):
            wanted[Path(spec[key]["uri"]).name] = spec[key]["sha256"]
    digests = artifacts / "digests.json"
    try:
        have = json.loads(digests.read_text())
    except (OSError, ValueError):
        have = {}
    if all(have.get(k) == v for k, v in wanted.items()) and all(
        (artifacts / k).is_file() for k in wanted
    ):
        tl.record("train models v1, v2, v3", "artifacts up to date", str(artifacts))
        return artifacts
    tl.say("training the quickstart models (seeded; about 10 seconds) ...")
    done = subprocess.run(
        [sys.executable, str(HERE / "train.py"), "--out", str(artifacts)], check=False
    )
    if done.returncode != 0:
        raise DemoError("train.py failed (see above)")
    tl.record("train models v1, v2, v3", "trained", str(artifacts))
    return artifacts


def _load(csv: Path, endpoint: str, router: str, pace: Pace, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *DRIFTLINE,
                "load",
                str(csv),
                "--url",
                endpoint,
                "--rate",
                str(pace.rate),
                "--duration",
                "240",
                "--concurrency",
                "8",
                *CATEGORIES,
                "--feedback-url",
                f"{router}/v1/feedback",
                "--feedback-delay",
                "0.5",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


def _evidence(state: Path, model: str) -> str:
    """The numbers behind a rollout: the analysis lines of its decisions in events.jsonl."""
    try:
        lines = (state / "events.jsonl").read_text().splitlines()
    except OSError:
        return "no events recorded"
    found = []
    for line in lines:
        event = json.loads(line)
        message = str(event.get("message") or "")
        if event.get("to") == model and ("agreement" in message or "error rate" in message):
            found.append(f"{event['kind']}: {message}")
    return "; ".join(found[-3:]) or "no analysis recorded"


def _history(state: Path) -> list[dict[str, Any]]:
    history = _status(state).get("history")
    return history if isinstance(history, list) else []


def demo(state: Path, port: int, pace: Pace, keep_running: bool = False) -> Timeline:
    """Run the whole timeline; raises DemoError when a step does not happen in time.

    With ``keep_running`` (and success) ``driftline up`` is left running for a look around;
    ``driftline down --state-dir STATE`` stops it. On failure everything is stopped regardless.
    """
    tl = Timeline()
    artifacts = _artifacts(tl)
    if state.exists():
        shutil.rmtree(state)
    manifests = _manifests(state / "demo-manifests", artifacts, pace, "churn-v1")
    state.mkdir(parents=True, exist_ok=True)
    up_log = (state / "up.log").open("wb")
    up = subprocess.Popen(
        [
            *DRIFTLINE,
            "up",
            "-f",
            str(manifests),
            "--state-dir",
            str(state),
            "--port",
            str(port),
            "--tick",
            "0.2",
        ],
        stdout=up_log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    traffic: subprocess.Popen[bytes] | None = None
    kept = False
    events = Events(state, tl)
    try:
        tl.say(f"driftline up -f {manifests} (log: {state / 'up.log'})")

        def serving(model: str) -> Callable[[], bool]:
            def check() -> bool:
                events.show()
                s = _status(state)
                return bool(
                    s.get("endpoint")
                    and s.get("stableModel") == model
                    and s.get("phase") == "Healthy"
                )

            return check

        _wait("model v1 answering through the router", serving("churn-v1"), 90, up, tl)
        endpoint = str(_status(state)["endpoint"])
        router = endpoint.split("/v2/")[0]
        tl.record("deploy churn-v1", "Healthy", endpoint)

        traffic = _load(artifacts / "traffic.csv", endpoint, router, pace, state / "load.log")
        tl.say(
            f"driftline load traffic.csv at {pace.rate} req/s with delayed labels "
            f"(log: {state / 'load.log'})"
        )

        for model, verdict in (("churn-v2", "promote"), ("churn-v3", "roll back")):
            target = state / f"deployment-{model}.yaml"
            doc = yaml.safe_load((manifests / "deployment.yaml").read_text())
            doc["spec"]["model"] = model
            target.write_text(yaml.safe_dump(doc, sort_keys=False))
            applied = _run("apply", "-f", str(target), state=state)
            if applied.returncode != 0:
                raise DemoError(f"driftline apply failed: {applied.stdout}{applied.stderr}")
            tl.say(
                f"driftline apply -f {target.name}: {applied.stdout.strip()} "
                f"(expected to {verdict})"
            )
            if model == "churn-v2":
                _wait("v2 through shadow and canary steps", serving("churn-v2"), 120, up, tl)
                tl.record("roll out churn-v2", "Promoted", _evidence(state, "churn-v2"))
            else:

                def rolled_back() -> bool:
                    events.show()
                    return _status(state).get("phase") == "Degraded"

                _wait("v3 to fail its analysis", rolled_back, 90, up, tl)
                last = _history(state)[-1]
                tl.record(
                    "roll out churn-v3",
                    f"{last['action']} ({last['reason']})",
                    str(last.get("message", "")),
                )
        events.show()

        monitor = next(
            (
                p["url"]
                for p in json.loads((state / "processes.json").read_text())
                if p["role"] == "monitor" and p["model"] == "churn-v2" and p["pid"]
            ),
            None,
        )
        if monitor is None:
            raise DemoError("no monitor runs for churn-v2 (see up.log)")

        def window_verdict(since: float) -> dict[str, Any] | None:
            """The verdict of a full window whose rows all arrived after ``since``."""
            doc = _get_json(f"{monitor}/v1/verdict")
            for v in (doc or {}).get("variants", {}).values():
                window = v.get("window") or {}
                verdict = v.get("verdict") or {}
                first = window.get("first_ts")
                if (
                    isinstance(first, int | float)
                    and first >= since
                    and int(window.get("rows") or 0) >= pace.window
                    and verdict.get("status") in ("drift", "no_drift")
                ):
                    return dict(verdict)
            return None

        before: dict[str, Any] = {}

        def judged() -> bool:
            before.update(window_verdict(0.0) or {})
            return bool(before)

        _wait("a drift verdict over a full window of normal traffic", judged, 30, up, tl)
        tl.say(
            f"stable monitor verdict on traffic.csv: {before['status']} "
            f"(drifted: {', '.join(before.get('drifted', [])) or 'none'})"
        )
        _stop(traffic)
        shifted_at = time.time()
        traffic = _load(
            artifacts / "traffic-shifted.csv", endpoint, router, pace, state / "load.log"
        )
        tl.say("driftline load traffic-shifted.csv: the input distribution moves")
        found: dict[str, Any] = {}

        def drifted() -> bool:
            verdict = window_verdict(shifted_at)
            if verdict is not None and verdict["status"] == "drift":
                found.update(verdict)
                return True
            return False

        _wait("the stable monitor's drift verdict to turn", drifted, 60, up, tl)
        tl.record(
            "shift the input",
            f"{before['status']} -> drift",
            "drifted: " + ", ".join(found.get("drifted", [])),
        )
        _stop(traffic)
        traffic = None
        shown = _run("status", "churn", state=state)
        print(shown.stdout, flush=True)
        _summary(tl, state, endpoint, router, monitor, keep_running)
        kept = keep_running
        return tl
    finally:
        _stop(traffic)
        if not kept:
            down = _run("down", state=state)
            tl.say(down.stdout.strip() or down.stderr.strip())
            _stop(up)
        up_log.close()


def _summary(
    tl: Timeline, state: Path, endpoint: str, router: str, monitor: str, keep_running: bool
) -> None:
    width = max(len(r[1]) for r in tl.rows)
    print("\nWhat happened")
    print(f"  {'time':>5}  {'step':<{width}}  outcome")
    for at, step, outcome in tl.rows:
        print(f"  {at:>5}  {step:<{width}}  {outcome}")
    print("\nWhere to look")
    places = [
        ("inference endpoint (OIP v2)", endpoint),
        ("router stats / metrics", f"{router}/stats  {router}/metrics"),
        ("stable monitor verdict", f"{monitor}/v1/verdict  {monitor}/metrics"),
        ("status", f"driftline status churn --state-dir {state}"),
        ("decisions (history)", str(state / "events.jsonl")),
        ("objects and status", str(state / "objects")),
        ("process logs", str(state / "logs")),
    ]
    for name, where in places:
        print(f"  {name:<28} {where}")
    if keep_running:
        print(f"(still running: stop everything with `driftline down --state-dir {state}`)\n")
    else:
        print("(the processes are stopped when the demo ends; `--keep-running` leaves them up)\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--short",
        action="store_true",
        default=os.environ.get("DRIFTLINE_DEMO_SHORT", "") not in ("", "0"),
        help="CI mode: shorter holds, fewer samples",
    )
    parser.add_argument("--state-dir", type=Path, default=Path(".driftline-demo"))
    parser.add_argument("--port", type=int, default=0, help="router port (0: any free port)")
    parser.add_argument(
        "--keep-running",
        action="store_true",
        help="leave driftline up running at the end (stop it with driftline down)",
    )
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        demo(args.state_dir.resolve(), args.port, SHORT if args.short else FULL, args.keep_running)
    except DemoError as exc:
        print(
            f"\ndemo failed: {exc}\nlook at {args.state_dir / 'up.log'} and "
            f"{args.state_dir / 'logs'}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted: every process was stopped", file=sys.stderr)
        return 130
    print(f"demo finished in {time.monotonic() - started:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
