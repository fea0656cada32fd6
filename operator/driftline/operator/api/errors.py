"""Turn a pydantic ``ValidationError`` into one line per field, in Kubernetes path syntax.

Handlers and local mode parse manifests with the API models; when that fails, the user needs
``spec.rollout.steps[1].weight: Input should be less than or equal to 100``, not pydantic's
multi-line report. Used for the ``InvalidSpec`` condition message and CLI errors. Pure.
"""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["field_path", "field_problems", "summarize"]

_PREFIXES = ("Value error, ", "Assertion failed, ")


def field_path(loc: tuple[int | str, ...], root: str = "") -> str:
    """``("spec", "rollout", "steps", 1, "weight")`` → ``spec.rollout.steps[1].weight``.

    Args:
        loc: a pydantic error location.
        root: a prefix for locations relative to a sub-object (e.g. ``"spec"`` when the model that
            failed was ``DeploymentSpec``).

    Returns:
        The path as ``kubectl explain`` and the API server spell it.
    """
    out = root
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else part
    return out


def field_problems(exc: ValidationError, root: str = "") -> list[str]:
    """One ``<path>: <message>`` line per error, in pydantic's order.

    Args:
        exc: the error raised by ``model_validate``/``from_manifest``.
        root: prefix for the paths (see ``field_path``).

    Returns:
        The lines; unknown fields read ``<path>: unknown field``.
    """
    lines = []
    for error in exc.errors(include_url=False):
        message = str(error["msg"])
        for prefix in _PREFIXES:
            message = message.removeprefix(prefix)
        if error["type"] == "extra_forbidden":
            message = "unknown field"
        path = field_path(tuple(error["loc"]), root) or "(root)"
        lines.append(f"{path}: {message}")
    return lines


def summarize(exc: ValidationError, root: str = "", limit: int = 5) -> str:
    """The first ``limit`` problems joined with ``; `` (for a condition message or a log line).

    Args:
        exc: the validation error.
        root: prefix for the paths.
        limit: most problems to list; the rest are counted.

    Returns:
        e.g. ``spec.model: Field required; spec.replicas: ... (and 2 more)``.
    """
    lines = field_problems(exc, root)
    text = "; ".join(lines[:limit])
    if len(lines) > limit:
        text += f" (and {len(lines) - limit} more)"
    return text
