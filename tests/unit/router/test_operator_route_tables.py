"""Contract: every route table the operator renders (its golden files) is valid for the router."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from driftline.serving.router.settings import RouterSettings
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


def _objects(path: Path) -> list[dict[str, object]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("*.yaml")), ids=lambda p: p.name)
def test_the_router_watches_the_configmap_its_role_lets_it_read(path: Path) -> None:
    """The rendered router pod names a ConfigMap (``--table-configmap`` via env) that exists in
    the same render, runs as the ServiceAccount the RoleBinding binds, and that Role allows
    get/list/watch on exactly that ConfigMap; no route-table volume is mounted any more."""
    objs = _objects(path)
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objs:
        by_kind.setdefault(str(obj["kind"]), []).append(obj)
    (router,) = [d for d in by_kind["Deployment"] if d["metadata"]["name"].endswith("-router")]
    pod = router["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert "DRIFTLINE_ROUTE_TABLE" not in env
    settings = RouterSettings(table_configmap=env["DRIFTLINE_ROUTE_TABLE_CONFIGMAP"])
    ref = settings.configmap_ref()
    assert ref is not None
    configmaps = {c["metadata"]["name"]: c for c in by_kind["ConfigMap"]}
    assert ref.key in configmaps[ref.name]["data"]
    assert ref.namespace == router["metadata"]["namespace"]
    assert not any("configMap" in v for v in pod.get("volumes", []))
    assert pod["automountServiceAccountToken"] is True
    account = pod["serviceAccountName"]
    assert [a["metadata"]["name"] for a in by_kind["ServiceAccount"]] == [account]
    (binding,) = by_kind["RoleBinding"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": ref.namespace}
    ]
    (role,) = [r for r in by_kind["Role"] if r["metadata"]["name"] == binding["roleRef"]["name"]]
    assert role["rules"] == [
        {
            "apiGroups": [""],
            "resources": ["configmaps"],
            "resourceNames": [ref.name],
            "verbs": ["get", "list", "watch"],
        }
    ]
