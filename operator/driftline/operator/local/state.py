"""The local state directory: what ``driftline up`` runs, every object's status, commands, logs.

Who uses it: the running ``driftline up`` (:mod:`driftline.operator.local.runtime`) writes it; the
other terminal commands (``status``, ``apply``, ``promote``…, ``down``) read it and drop commands
into it. It is the only channel between them: no socket, no port, so it works the same whatever
the firewall says, and a crashed ``up`` leaves a readable trail.

Layout (default ``.driftline/`` in the current folder)::

    .driftline/
      up.json                 the running `up`: pid, start time, router URL (absent when down)
      processes.json          every child process: name, role, pid, port, restarts, state
      objects/<kind>/<name>.json   the object as applied (spec) plus the status the loop wrote
      commands/<id>.json      commands waiting for the loop (promote, abort, apply, ...)
      commands/done/<id>.json      the same, with the loop's answer (ok + message)
      events.jsonl            every decision, one JSON object per line (the history)
      models/<model>/         verified copies of the artifacts
      logs/<child>.log        each child's stdout and stderr
      route-<deployment>.yaml the router's table (the router watches it)

Every JSON file is written atomically (a temporary file in the same folder, flushed, then renamed
over the target), so a reader never sees half a file and a crash never leaves one.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

__all__ = [
    "DEFAULT_DIR",
    "CommandAnswer",
    "CommandFile",
    "ProcessRecord",
    "StateDir",
    "StateError",
    "UpRecord",
    "write_atomic",
]

DEFAULT_DIR: Final = Path(".driftline")
"""Where the state lives unless ``--state-dir`` (``DRIFTLINE_LOCAL_STATE_DIR``) says otherwise."""


class StateError(RuntimeError):
    """The state directory is unusable or says something impossible (the message says what)."""


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the new one, never a mix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class UpRecord(_Record):
    """The running ``driftline up``."""

    pid: int
    """Process id of ``driftline up`` (``down`` signals it)."""
    started_at: datetime
    """When it started."""
    router_urls: dict[str, str] = Field(default_factory=dict)
    """Deployment name -> the router URL clients send requests to."""
    manifests: list[str] = Field(default_factory=list)
    """The files it was started with."""


class ProcessRecord(_Record):
    """One child process of ``driftline up``."""

    name: str
    """Unique name, e.g. ``churn-stable-0-serve``."""
    role: str
    """``serve``, ``monitor`` or ``route``."""
    deployment: str
    """The Deployment it belongs to."""
    variant: str | None = None
    """``stable``, ``canary`` or ``shadow`` (None for the router)."""
    model: str | None = None
    """The Model it serves or watches."""
    pid: int | None = None
    """Current process id (None while not running)."""
    port: int
    """The port it listens on, on 127.0.0.1."""
    url: str
    """``http://127.0.0.1:PORT``."""
    state: str
    """``starting``, ``ready``, ``restarting``, ``failed`` or ``stopped``."""
    restarts: int = 0
    """How many times it was restarted after a crash."""
    log: str
    """Its log file."""


class CommandFile(_Record):
    """A command for the running ``up``, written by another terminal."""

    id: str
    """Unique id (time-ordered): the file name and the rollout machine's command id."""
    verb: str
    """``promote``, ``abort``, ``pause``, ``resume``, ``retry`` or ``apply``."""
    target: str | None = None
    """The Deployment the verb applies to (None for ``apply``)."""
    manifests: list[dict[str, JsonValue]] = Field(default_factory=list)
    """For ``apply``: the validated manifests to apply."""
    sent_at: datetime
    """When it was written."""


class CommandAnswer(_Record):
    """The loop's answer to a command (``commands/done/<id>.json``)."""

    id: str
    ok: bool
    message: str
    done_at: datetime


@dataclass(frozen=True)
class StateDir:
    """The state directory rooted at ``root`` (see the module docstring for the layout)."""

    root: Path

    # ---------------------------------------------------------------------------- paths
    @property
    def up_file(self) -> Path:
        """``up.json``."""
        return self.root / "up.json"

    @property
    def processes_file(self) -> Path:
        """``processes.json``."""
        return self.root / "processes.json"

    @property
    def events_file(self) -> Path:
        """``events.jsonl``."""
        return self.root / "events.jsonl"

    @property
    def commands_dir(self) -> Path:
        """``commands/``."""
        return self.root / "commands"

    @property
    def logs_dir(self) -> Path:
        """``logs/``."""
        return self.root / "logs"

    @property
    def models_dir(self) -> Path:
        """``models/``."""
        return self.root / "models"

    def object_file(self, kind: str, name: str) -> Path:
        """``objects/<kind>/<name>.json``."""
        return self.root / "objects" / kind.lower() / f"{name}.json"

    def route_table_file(self, deployment: str) -> Path:
        """The router table of ``deployment``."""
        return self.root / f"route-{deployment}.yaml"

    def log_file(self, child: str) -> Path:
        """The log file of child process ``child``."""
        return self.logs_dir / f"{child}.log"

    def prepare(self) -> None:
        """Create the folders (idempotent)."""
        for folder in (self.root, self.commands_dir / "done", self.logs_dir, self.models_dir):
            folder.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------------------- up.json
    def read_up(self) -> UpRecord | None:
        """The running ``up``'s record, or None when there is none (or it is unreadable)."""
        try:
            return UpRecord.model_validate_json(self.up_file.read_bytes())
        except (FileNotFoundError, ValidationError):
            return None

    def write_up(self, record: UpRecord) -> None:
        """Record the running ``up``."""
        write_atomic(self.up_file, record.model_dump_json(indent=2).encode())

    def clear_up(self) -> None:
        """Forget the running ``up`` (it stopped)."""
        self.up_file.unlink(missing_ok=True)

    # ---------------------------------------------------------------------------- processes
    def write_processes(self, records: list[ProcessRecord]) -> None:
        """Replace ``processes.json``."""
        doc = [r.model_dump(mode="json") for r in records]
        write_atomic(self.processes_file, json.dumps(doc, indent=2).encode())

    def read_processes(self) -> list[ProcessRecord]:
        """The children the last ``up`` recorded (empty when none)."""
        try:
            raw = json.loads(self.processes_file.read_bytes())
        except (FileNotFoundError, json.JSONDecodeError):
            return []
        if not isinstance(raw, list):
            return []
        out: list[ProcessRecord] = []
        for item in raw:
            try:
                out.append(ProcessRecord.model_validate(item))
            except ValidationError:
                continue
        return out

    # ---------------------------------------------------------------------------- objects
    def write_object(self, kind: str, name: str, manifest: Mapping[str, object]) -> None:
        """Store one object (spec and status) as JSON."""
        write_atomic(
            self.object_file(kind, name), json.dumps(manifest, indent=2, default=str).encode()
        )

    def read_object(self, kind: str, name: str) -> dict[str, JsonValue] | None:
        """One stored object, or None."""
        try:
            doc = json.loads(self.object_file(kind, name).read_bytes())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        return doc if isinstance(doc, dict) else None

    def object_names(self, kind: str) -> list[str]:
        """Names of the stored objects of ``kind``, sorted."""
        folder = self.root / "objects" / kind.lower()
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    # ---------------------------------------------------------------------------- events
    def append_event(self, event: Mapping[str, object]) -> None:
        """Append one decision to ``events.jsonl`` (one line, written with one call)."""
        self.root.mkdir(parents=True, exist_ok=True)
        line = json.dumps(event, default=str, separators=(",", ":")) + "\n"
        with self.events_file.open("a") as fh:
            fh.write(line)

    def read_events(self) -> list[dict[str, JsonValue]]:
        """Every recorded decision, oldest first (unreadable lines skipped)."""
        try:
            text = self.events_file.read_text()
        except FileNotFoundError:
            return []
        out: list[dict[str, JsonValue]] = []
        for line in text.splitlines():
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(doc, dict):
                out.append(doc)
        return out

    # ---------------------------------------------------------------------------- commands
    def send_command(
        self,
        verb: str,
        *,
        target: str | None = None,
        manifests: list[dict[str, JsonValue]] | None = None,
        now: datetime | None = None,
    ) -> CommandFile:
        """Queue a command for the running ``up``; returns it (its ``id`` names the answer)."""
        sent = now or datetime.now(UTC)
        command = CommandFile(
            id=f"{time.time_ns():020d}-{secrets.token_hex(3)}",
            verb=verb,
            target=target,
            manifests=manifests or [],
            sent_at=sent,
        )
        write_atomic(self.commands_dir / f"{command.id}.json", command.model_dump_json().encode())
        return command

    def pending_commands(self) -> Iterator[tuple[Path, CommandFile | str]]:
        """Queued commands in order; an unreadable file yields its error message instead."""
        folder = self.commands_dir
        if not folder.is_dir():
            return
        for path in sorted(folder.glob("*.json")):
            try:
                yield path, CommandFile.model_validate_json(path.read_bytes())
            except ValidationError as exc:
                yield path, f"{path.name}: not a command: {exc.errors()[0]['msg']}"
            except FileNotFoundError:
                continue

    def answer(self, path: Path, answer: CommandAnswer) -> None:
        """Record the answer to a command and remove it from the queue."""
        write_atomic(
            self.commands_dir / "done" / f"{answer.id}.json", answer.model_dump_json().encode()
        )
        path.unlink(missing_ok=True)

    def read_answer(self, command_id: str) -> CommandAnswer | None:
        """The answer to a command, or None while it waits."""
        try:
            return CommandAnswer.model_validate_json(
                (self.commands_dir / "done" / f"{command_id}.json").read_bytes()
            )
        except (FileNotFoundError, ValidationError):
            return None
