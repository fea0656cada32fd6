"""Driftline's data plane: model server, router, monitor sidecar, drift statistics, model fetch.

Nothing here may import ``driftline.operator`` (import-linter enforces it): the data plane runs in
pods that know nothing of the Kubernetes API.
"""

from __future__ import annotations
