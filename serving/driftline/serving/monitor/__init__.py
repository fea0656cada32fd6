"""The drift monitor: windows, delayed labels, the sidecar and the offline drift tool.

- :mod:`.window` counts the stream into tumbling/sliding windows (mergeable across pods).
- :mod:`.feedback` joins delayed labels with logged predictions (performance per version).
- :mod:`.service` is the sidecar's behaviour, free of any web framework.
- :mod:`.app` binds it to HTTP (aiohttp); :mod:`.metrics` holds its Prometheus metrics.
- :mod:`.dataset` reads reference/current tables from ``.npz`` and ``.csv`` files.
- :mod:`.cli` defines ``driftline profile``, ``driftline monitor`` and ``driftline drift``.
"""
