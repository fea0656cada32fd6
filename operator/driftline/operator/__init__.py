"""Driftline's control plane: API models, CRD generation, plan, rollout, render, handlers, CLI.

This package may import ``driftline.serving``; the reverse is forbidden (import-linter enforces it).
Importing it has no side effects: heavy modules (kopf, the Kubernetes client, onnxruntime) are
imported by the commands that need them.
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"
