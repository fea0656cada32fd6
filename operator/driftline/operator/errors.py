"""The operator's error vocabulary, mapped once to kopf's permanent/temporary errors (in handlers).

The tree::

    OperatorError                    anything the operator raises on purpose
    ├── PermanentFailure             retrying cannot help until the object (or a reference) changes
    │   ├── SpecInvalid              a field of a spec is wrong: names the field and the problem
    │   ├── ArtifactInvalid          the model artifact is wrong: digest mismatch, unreadable ONNX
    │   └── ApiRejected              the API server refused a write we rendered (400/403/422)
    └── TemporaryFailure             worth retrying after ``delay`` seconds
        ├── DependencyNotReady       a referenced object is missing or not Ready yet
        ├── ArtifactUnavailable      an artifact cannot be fetched now (network, 5xx, missing file)
        └── ApiUnavailable           conflicts, throttling, 5xx, connection errors outlived retries

Why permanent vs temporary matters: a wrong digest retried every few seconds is a retry storm that
changes nothing; a 503 from the API server is gone a moment later. Each error carries a short
CamelCase ``reason`` that becomes the condition reason and the metrics label, so the vocabulary a
user sees in ``kubectl get`` and in Prometheus is this one.

This module imports no kopf: ``driftline.operator.handlers`` owns the one mapping to kopf errors.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Base of every error the operator raises on purpose.

    Attributes:
        reason: CamelCase reason for conditions, Events and metric labels.
        message: what went wrong, in words that name the field or object concerned.
    """

    reason: str = "Error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason


class PermanentFailure(OperatorError):
    """Retrying cannot help until the object or something it references changes."""

    reason = "PermanentFailure"


class SpecInvalid(PermanentFailure):
    """A field of a spec is invalid; the message names the field and the problem."""

    reason = "InvalidSpec"


class ArtifactInvalid(PermanentFailure):
    """The model artifact is unusable (digest mismatch, unreadable ONNX, reference mismatch)."""

    reason = "ArtifactInvalid"


class ApiRejected(PermanentFailure):
    """The API server refused a write (400, 403, 422): a rendering or RBAC bug, not a blip.

    Attributes:
        status: the HTTP status the server answered.
    """

    reason = "ApiRejected"

    def __init__(self, message: str, *, status: int, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.status = status


class TemporaryFailure(OperatorError):
    """Worth retrying after ``delay`` seconds.

    Attributes:
        delay: seconds before the next attempt.
    """

    reason = "TemporaryFailure"

    def __init__(self, message: str, *, delay: float = 10.0, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.delay = delay


class DependencyNotReady(TemporaryFailure):
    """A referenced object is missing or not Ready yet (e.g. the Model a Deployment serves)."""

    reason = "DependencyNotReady"


class ArtifactUnavailable(TemporaryFailure):
    """An artifact cannot be fetched right now (network, 408/429/5xx, file not there yet)."""

    reason = "FetchRetrying"


class ApiUnavailable(TemporaryFailure):
    """The API server kept answering conflicts, 429, 5xx or was unreachable through all retries.

    Attributes:
        status: the last HTTP status (0 when the connection itself failed).
    """

    reason = "ApiUnavailable"

    def __init__(self, message: str, *, status: int, delay: float = 5.0) -> None:
        super().__init__(message, delay=delay)
        self.status = status
