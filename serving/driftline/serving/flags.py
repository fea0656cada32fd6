"""Command-line flags from settings classes: one builder, and one place a flag error is worded.

Who calls it: every command that builds a pydantic-settings object from its flags (``driftline
serve``, ``driftline monitor``, local mode's commands).

- :func:`options_for` turns every field of a settings class into one ``click.Option``: the flag
  ``--field-name``, its help text the field's docstring plus the default, its environment
  variable ``<env_prefix><FIELD>`` (read by click, shown in ``--help``). A flag on the command
  line wins over the environment; the defaults live in the settings class only (every option's
  click default is ``None``).
- :func:`settings_from_flags` builds the settings object: a flag left out arrives as ``None`` and
  is dropped, so the default applies; a value pydantic rejects becomes a
  :class:`click.UsageError` naming the flag (``--max-batch-size: Input should be ...``), exit 2.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import click
from pydantic import BaseModel, ValidationError

S = TypeVar("S", bound=BaseModel)


def _click_type(field_name: str, annotation: object) -> object:
    """The click type of a (non-bool) settings field's annotation."""
    if typing.get_origin(annotation) is typing.Literal:
        return click.Choice([str(a) for a in typing.get_args(annotation)])
    simple: dict[object, object] = {
        Path: click.Path(path_type=Path),
        int: click.INT,
        float: click.FLOAT,
        str: click.STRING,
    }
    if annotation in simple:
        return simple[annotation]
    raise TypeError(f"no flag type for settings field {field_name}: {annotation}")


def option_for(settings_cls: type[BaseModel], field_name: str) -> click.Option:
    """One ``--flag`` for one field of ``settings_cls``.

    The environment variable is ``model_config["env_prefix"]`` + the upper-cased field name, the
    same name pydantic-settings reads, so the flag, the variable and the field agree.

    Raises:
        TypeError: for a field type that has no flag form (a test covers every settings field).
    """
    info = settings_cls.model_fields[field_name]
    prefix = str(settings_cls.model_config.get("env_prefix", ""))
    envvar = f"{prefix}{field_name.upper()}"
    flag = field_name.replace("_", "-")
    help_text = (info.description or "").replace("\n", " ").replace("``", "")
    help_text += " [required]" if info.is_required() else f" [default: {info.default}]"
    annotation: object = info.annotation
    if isinstance(annotation, types.UnionType):  # X | None: the flag takes X
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
    if annotation is bool:
        return click.Option(
            [f"--{flag}/--no-{flag}", field_name],
            default=None,
            envvar=envvar,
            show_envvar=True,
            help=help_text,
        )
    return click.Option(
        [f"--{flag}", field_name],
        type=_click_type(field_name, annotation),
        default=None,
        envvar=envvar,
        show_envvar=True,
        help=help_text,
    )


def options_for(settings_cls: type[BaseModel]) -> list[click.Parameter]:
    """One option per field of ``settings_cls``, in field order (see :func:`option_for`)."""
    return [option_for(settings_cls, name) for name in settings_cls.model_fields]


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
