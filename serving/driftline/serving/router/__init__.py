"""The router: Driftline's public OIP endpoint in front of a deployment's variants.

Modules, from pure to I/O:

- :mod:`.table`: the route table format, its validation, and the split decision (pure).
- :mod:`.health`: passive health of upstream endpoints (ejection after connect failures; pure).
- :mod:`.compare`: shadow vs primary output comparison (pure).
- :mod:`.stats`: per-variant windows of requests, errors and latency for the JSON stats (pure).
- :mod:`.metrics`: Prometheus metrics over a registry passed in.
- :mod:`.upstream`: the keep-alive HTTP/1.1 client pools to the model servers.
- :mod:`.proxy`: the request path: split, forward, retry, mirror, feedback.
- :mod:`.admin`, :mod:`.watch`: table changes through the admin port and the watched file.
- :mod:`.configmap` (pure) and :mod:`.kubewatch` (its HTTP edge): the table in a ConfigMap,
  watched through the Kubernetes API (``--table-configmap``).
- :mod:`.settings`, :mod:`.main`, :mod:`.cli`: ``driftline route``.
"""

from __future__ import annotations
