"""``driftline crds``: write the generated CustomResourceDefinitions.

Thin I/O edge over ``driftline.operator.api.crdgen`` (pure). ``make crds`` runs
``driftline crds --out crds --out charts/driftline/crds``; without ``--out`` the CRDs go to
stdout as one multi-document YAML stream (``driftline crds | kubectl apply -f -``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import click


def _write_atomically(path: Path, text: str) -> bool:
    """Write ``text`` to ``path`` via a temporary file and rename; True when the content changed."""
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return True


@click.command("crds")
@click.option(
    "--out",
    "outs",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to write <plural>.driftline.dev.yaml files into (repeatable). "
    "Default: print all CRDs to stdout.",
)
def crds(outs: tuple[Path, ...]) -> None:
    """Generate the CustomResourceDefinitions from the API models.

    Writes one file per kind into each --out folder (created if missing), or prints all of them
    as one YAML stream when no --out is given. Stale driftline CRD files in a folder are
    removed, so a renamed kind leaves nothing behind.
    """
    from driftline.operator.api import crdgen

    documents = crdgen.crds()
    if not outs:
        click.echo(crdgen.render_yaml(documents), nl=False)
        return
    for out in outs:
        out.mkdir(parents=True, exist_ok=True)
        wanted = {crdgen.crd_file_name(doc): crdgen.render_yaml([doc]) for doc in documents}
        for name, text in wanted.items():
            changed = _write_atomically(out / name, text)
            click.echo(f"{'wrote' if changed else 'unchanged'} {out / name}", err=True)
        for stale in sorted(out.glob("*.driftline.dev.yaml")):
            if stale.name not in wanted:
                stale.unlink()
                click.echo(f"removed {stale}", err=True)
