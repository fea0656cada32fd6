"""``driftline validate``: check Driftline manifests offline, with the API server's messages.

Thin I/O edge: reads YAML files (or stdin), runs ``driftline.operator.api.validate`` (the generated
schema and the CEL rules) and the pydantic models on every Driftline document, and prints one line
per document. Useful in CI or a pre-commit hook before a GitOps sync, and the same check local mode
applies. Exit status: 0 all valid, 1 some invalid, 2 a file could not be read or parsed.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

_SUFFIXES = (".yaml", ".yml")


def _files(paths: tuple[str, ...]) -> Iterator[tuple[str, Path | None]]:
    for raw in paths:
        if raw == "-":
            yield "<stdin>", None
            continue
        path = Path(raw)
        if path.is_dir():
            for found in sorted(path.rglob("*")):
                if found.is_file() and found.suffix in _SUFFIXES:
                    yield str(found), found
        else:
            yield raw, path


@click.command("validate")
@click.argument("paths", nargs=-1, required=True)
def validate(paths: tuple[str, ...]) -> None:
    """Validate Driftline manifests as the API server would (schema + CEL rules).

    PATHS are YAML files, folders (searched recursively for *.yaml and *.yml) or - for stdin.
    Documents that are not driftline.dev objects are skipped.
    """
    import yaml
    from pydantic import ValidationError

    from driftline.operator.api import kind_class
    from driftline.operator.api.errors import field_problems
    from driftline.operator.api.validate import format_problems, validate_manifest

    invalid = checked = 0
    for label, path in _files(paths):
        try:
            text = sys.stdin.read() if path is None else path.read_text(encoding="utf-8")
            documents = list(yaml.safe_load_all(text))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            click.echo(f"{label}: cannot read: {exc}", err=True)
            sys.exit(2)
        for index, doc in enumerate(documents):
            if not isinstance(doc, dict) or not str(doc.get("apiVersion", "")).startswith(
                "driftline.dev/"
            ):
                continue
            checked += 1
            kind = str(doc.get("kind"))
            meta = doc.get("metadata")
            name = str(meta.get("name", "")) if isinstance(meta, dict) else ""
            where = f"{label}#{index} {kind}/{name}"
            problems = validate_manifest(doc)
            if problems:
                invalid += 1
                click.echo(f"{where}: {format_problems(kind, name, problems)}")
                continue
            cls = kind_class(kind)
            try:
                if cls is not None:
                    cls.from_manifest(doc)
            except ValidationError as exc:
                invalid += 1
                click.echo(f"{where}: invalid: {'; '.join(field_problems(exc))}")
                continue
            click.echo(f"{where}: valid")
    click.echo(f"{checked} Driftline manifest(s) checked, {invalid} invalid", err=True)
    sys.exit(1 if invalid else 0)
