"""Local mode: ``driftline up`` runs the manifests of a cluster as processes on this machine.

Modules: :mod:`~driftline.operator.local.state` (the state directory, the only channel between
``up`` and the other terminal commands), :mod:`~driftline.operator.local.supervisor` (child
processes), :mod:`~driftline.operator.local.manifests` (reading and validating the YAML),
:mod:`~driftline.operator.local.actuator` (planned topology -> processes and route tables),
:mod:`~driftline.operator.local.runtime` (the control loop) and
:mod:`~driftline.operator.local.commands` (the click commands).
"""
