"""Packaging invariants: the namespace split and the explicit package list in pyproject.toml."""

from __future__ import annotations

import tomllib
from pathlib import Path


def _declared_packages(root: Path) -> set[str]:
    data = tomllib.loads((root / "pyproject.toml").read_text())
    return set(data["tool"]["setuptools"]["packages"])


def _package_folders(root: Path) -> set[str]:
    found: set[str] = set()
    for folder in ("operator", "serving"):
        base = root / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base)
            found.add(".".join(rel.parts))
    return found


def test_every_package_folder_is_declared(repo_root: Path) -> None:
    missing = _package_folders(repo_root) - _declared_packages(repo_root)
    assert not missing, (
        f"add these to [tool.setuptools] packages in pyproject.toml: {sorted(missing)}"
    )


def test_no_declared_package_is_missing_on_disk(repo_root: Path) -> None:
    stale = _declared_packages(repo_root) - _package_folders(repo_root)
    assert not stale, f"declared in pyproject.toml but absent: {sorted(stale)}"


def test_namespace_has_no_init(repo_root: Path) -> None:
    # PEP 420: an __init__.py in either driftline/ folder would hide the other half.
    assert not (repo_root / "operator" / "driftline" / "__init__.py").exists()
    assert not (repo_root / "serving" / "driftline" / "__init__.py").exists()
