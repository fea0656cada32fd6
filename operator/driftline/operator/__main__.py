"""``python -m driftline.operator``: the same as the ``driftline`` console script."""

from __future__ import annotations

from driftline.operator.cli import main

if __name__ == "__main__":
    main()
