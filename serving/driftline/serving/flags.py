"""Settings from command-line flags: the one place a flag's validation error is worded.

Who calls it: every command that builds a pydantic-settings object from its flags (``driftline
serve``, ``driftline monitor``, local mode's commands). A flag left out arrives as ``None`` and is
dropped, so the environment variable or the default applies; a value pydantic rejects becomes a
:class:`click.UsageError` naming the flag (``--max-batch-size: Input should be ...``), exit 2.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

import click
from pydantic import BaseModel, ValidationError

S = TypeVar("S", bound=BaseModel)


def settings_from_flags(settings_cls: type[S], flags: Mapping[str, object]) -> S:
    """Build ``settings_cls`` from the flags that were given.

    Raises:
        click.UsageError: when a value is invalid; the message names each offending flag.
    """
    given = {k: v for k, v in flags.items() if v is not None}
    try:
        return settings_cls(**given)
    except ValidationError as exc:
        problems = "; ".join(
            f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-')}: {e['msg']}"
            if e["loc"]
            else e["msg"]
            for e in exc.errors()
        )
        raise click.UsageError(problems) from None
