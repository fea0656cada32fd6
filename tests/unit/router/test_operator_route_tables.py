"""Contract: every route table the operator renders (its golden files) is valid for the router."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from driftline.serving.router.table import parse_table

GOLDEN = Path(__file__).resolve().parents[1] / "render" / "golden"


def _route_tables() -> list[tuple[str, str]]:
    found = []
    for path in sorted(GOLDEN.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
                for key, text in (doc.get("data") or {}).items():
                    if "route" in doc["metadata"]["name"] or key.endswith((".json", ".yaml")):
                        found.append((f"{path.name}:{key}", text))
    return found


TABLES = _route_tables()


def test_the_operator_renders_route_tables() -> None:
    assert TABLES, f"no route-table ConfigMap found in {GOLDEN}"


@pytest.mark.parametrize(("where", "text"), TABLES, ids=[w for w, _ in TABLES])
def test_rendered_route_table_parses(where: str, text: str) -> None:
    table = parse_table(text)
    assert table.stable.weight + (table.canary.weight if table.canary else 0) == 100
