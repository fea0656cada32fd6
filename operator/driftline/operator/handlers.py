"""Every kopf handler of the operator, registered into a registry passed in.

Handlers are thin and level-based: parse, load references, decide (pure modules), apply through the
``Cluster`` seam, write status through kopf's ``patch``. They return ``None`` (kopf would store a
return value under ``status.<handler id>``, outside the CRD schema). Errors are mapped to kopf's
permanent/temporary errors in exactly one place, ``kopf_error``.

``register(registry, ...)`` instead of module-level decorators: each test (and each process) builds
a fresh ``kopf.OperatorRegistry`` with its own settings, metrics and cluster seam.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kopf

from driftline.operator.errors import OperatorError, PermanentFailure, TemporaryFailure
from driftline.operator.k8s import Cluster
from driftline.operator.metrics import Metrics
from driftline.operator.settings import OperatorSettings, configure_kopf

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """What every handler needs, built once per process by the runner."""

    settings: OperatorSettings
    metrics: Metrics
    cluster: Cluster


def kopf_error(error: OperatorError) -> kopf.PermanentError | kopf.TemporaryError:
    """The one mapping of Driftline's errors to kopf's: permanent stops retries; temporary waits."""
    if isinstance(error, TemporaryFailure):
        return kopf.TemporaryError(f"{error.reason}: {error.message}", delay=error.delay)
    if isinstance(error, PermanentFailure):
        return kopf.PermanentError(f"{error.reason}: {error.message}")
    return kopf.TemporaryError(f"{error.reason}: {error.message}", delay=10)


def register(registry: kopf.OperatorRegistry, ctx: Context) -> None:
    """Register every handler of the operator into ``registry``."""

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        configure_kopf(settings, ctx.settings)

    # Credentials: the kubeconfig or the pod's service account, exactly as the kubernetes client
    # sees them (one source of truth for kopf and for our own API calls).
    kopf.on.login(registry=registry)(kopf.login_via_client)
