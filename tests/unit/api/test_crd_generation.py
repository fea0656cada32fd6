"""The generated CRDs: committed copies are current, and the schema is structural and documented.

We test these aspects:
- the files in crds/ and charts/driftline/crds/ equal a fresh in-process generation;
- every property of every CRD has a non-empty description (kubectl explain documents the API);
- the schema is structural: a type on every node, no $ref, title or additionalProperties: false
  beside properties, int-or-string only in the form the API server accepts;
- names, short names, category, status subresource and printer columns;
- CEL rules attached to the models arrive in x-kubernetes-validations;
- the `driftline crds` command writes the same bytes and prints a YAML stream without --out.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from driftline.operator import names
from driftline.operator.api import crdgen
from driftline.operator.cli import driftline

CRDS = crdgen.crds()
BY_KIND = {crd["spec"]["names"]["kind"]: crd for crd in CRDS}


def _root(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def _walk(node: dict[str, Any], path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if isinstance(node.get("items"), dict):
        yield from _walk(node["items"], f"{path}[*]")
    if isinstance(node.get("additionalProperties"), dict):
        yield from _walk(node["additionalProperties"], f"{path}.*")


def _all_nodes() -> Iterator[tuple[str, dict[str, Any]]]:
    for crd in CRDS:
        yield from _walk(_root(crd), crd["spec"]["names"]["kind"])


@pytest.mark.parametrize("folder", ["crds", "charts/driftline/crds"])
def test_committed_crds_equal_a_fresh_generation(repo_root: Path, folder: str) -> None:
    for crd in CRDS:
        path = repo_root / folder / crdgen.crd_file_name(crd)
        assert path.exists(), f"{path} missing: run `make crds`"
        assert path.read_text(encoding="utf-8") == crdgen.render_yaml([crd]), (
            f"{path} is stale: run `make crds` and commit"
        )
    on_disk = {p.name for p in (repo_root / folder).glob("*.driftline.dev.yaml")}
    assert on_disk == {crdgen.crd_file_name(c) for c in CRDS}


def test_generation_is_deterministic() -> None:
    assert crdgen.render_yaml(crdgen.crds()) == crdgen.render_yaml(CRDS)


def test_every_property_has_a_description() -> None:
    missing = [
        f"{path}.{name}"
        for path, node in _all_nodes()
        for name, child in node.get("properties", {}).items()
        if not str(child.get("description", "")).strip()
    ]
    # The root metadata is the one exception: the API server forbids anything but `type: object`
    # there (kubectl explain shows ObjectMeta's own documentation).
    kinds = [crd["spec"]["names"]["kind"] for crd in CRDS]
    assert sorted(missing) == sorted(f"{kind}.metadata" for kind in kinds)


def test_root_metadata_is_only_an_object() -> None:
    for crd in CRDS:
        assert _root(crd)["properties"]["metadata"] == {"type": "object"}


def test_list_items_are_described_when_they_are_objects() -> None:
    missing = [
        path
        for path, node in _all_nodes()
        if path.endswith("[*]") and "properties" in node and not node.get("description")
    ]
    assert not missing


def test_schema_is_structural() -> None:
    problems = []
    for path, node in _all_nodes():
        for forbidden in ("$ref", "$defs", "title", "examples", "const", "allOf", "oneOf"):
            if forbidden in node:
                problems.append(f"{path}: has {forbidden}")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: additionalProperties beside properties")
        if "anyOf" in node:
            if node.get("x-kubernetes-int-or-string") is not True or node["anyOf"] != [
                {"type": "integer"},
                {"type": "string"},
            ]:
                problems.append(f"{path}: anyOf other than int-or-string")
        elif "type" not in node:
            problems.append(f"{path}: no type")
        if node.get("default", "") is None:
            problems.append(f"{path}: null default")
        if "exclusiveMinimum" in node and not isinstance(node["exclusiveMinimum"], bool):
            problems.append(f"{path}: draft-2020 exclusiveMinimum")
    assert not problems, problems


def test_status_has_no_defaults() -> None:
    defaults = [
        path
        for crd in CRDS
        for path, node in _walk(_root(crd)["properties"]["status"], "status")
        if "default" in node
    ]
    assert not defaults


@pytest.mark.parametrize("kind_names", names.KINDS, ids=lambda k: k.kind)
def test_crd_names_and_subresources(kind_names: names.KindNames) -> None:
    crd = BY_KIND[kind_names.kind]
    assert crd["metadata"]["name"] == f"{kind_names.plural}.driftline.dev"
    spec = crd["spec"]
    assert spec["group"] == names.GROUP
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == list(kind_names.short_names)
    assert spec["names"]["categories"] == ["driftline"]
    assert spec["names"]["plural"] == kind_names.plural
    (version,) = spec["versions"]
    assert version["name"] == names.VERSION
    assert version["served"] is True and version["storage"] is True
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns[-1] == "Age"
    assert "Ready" in columns


def test_deployment_columns_answer_what_is_live_and_why() -> None:
    version = BY_KIND["Deployment"]["spec"]["versions"][0]
    shown = [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")]
    assert shown == ["Phase", "Stable", "Canary", "Weight", "Ready", "Message", "Age"]


def test_printer_column_paths_exist_in_the_schema() -> None:
    for crd in CRDS:
        root = _root(crd)
        for column in crd["spec"]["versions"][0]["additionalPrinterColumns"]:
            path = column["jsonPath"].split("[", 1)[0].lstrip(".").split(".")
            if path[0] == "metadata":
                continue
            node = root
            for part in path:
                assert part in node.get("properties", {}), (crd["metadata"]["name"], column)
                node = node["properties"][part]


def test_every_status_is_kstatus_shaped() -> None:
    for crd in CRDS:
        status = _root(crd)["properties"]["status"]["properties"]
        assert status["observedGeneration"]["type"] == "integer"
        conditions = status["conditions"]
        assert conditions["x-kubernetes-list-type"] == "map"
        assert conditions["x-kubernetes-list-map-keys"] == ["type"]
        item = conditions["items"]
        assert set(item["required"]) == {"type", "status", "lastTransitionTime", "reason"}
        assert item["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
        assert item["properties"]["lastTransitionTime"]["format"] == "date-time"
        assert "phase" in status and "message" in status


def test_cel_rules_travel_from_the_models() -> None:
    spec = _root(BY_KIND["Deployment"])["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert "!(has(self.replicas) && has(self.autoscaling))" in rules
    steps = spec["properties"]["rollout"]["properties"]["steps"]
    assert steps["maxItems"] == 20
    assert any(
        "self[i].weight > self[i - 1].weight" in r["rule"]
        for r in steps["x-kubernetes-validations"]
    )
    autoscaling = spec["properties"]["autoscaling"]
    assert (
        autoscaling["x-kubernetes-validations"][0]["rule"] == "self.minReplicas <= self.maxReplicas"
    )


def test_sha256_is_constrained_to_lower_case_hex() -> None:
    source = _root(BY_KIND["Model"])["properties"]["spec"]["properties"]["source"]
    assert source["properties"]["sha256"]["pattern"] == "^[0-9a-f]{64}$"


def test_wire_names_are_camel_case() -> None:
    spec = _root(BY_KIND["Deployment"])["properties"]["spec"]["properties"]
    assert "targetCPUUtilizationPercentage" in spec["autoscaling"]["properties"]
    assert "progressDeadline" in spec["rollout"]["properties"]
    for path, _node in _all_nodes():
        assert "_" not in path.rsplit(".", 1)[-1], path


def test_command_writes_the_files(tmp_path: Path) -> None:
    out_a, out_b = tmp_path / "a", tmp_path / "b"
    (out_a).mkdir()
    (out_a / "stale.driftline.dev.yaml").write_text("old")
    result = CliRunner().invoke(driftline, ["crds", "--out", str(out_a), "--out", str(out_b)])
    assert result.exit_code == 0, result.output
    for out in (out_a, out_b):
        assert sorted(p.name for p in out.iterdir()) == sorted(
            crdgen.crd_file_name(c) for c in CRDS
        )
        for crd in CRDS:
            assert (out / crdgen.crd_file_name(crd)).read_text() == crdgen.render_yaml([crd])


def test_command_prints_a_yaml_stream_without_out() -> None:
    result = CliRunner().invoke(driftline, ["crds"])
    assert result.exit_code == 0
    assert result.output.startswith("# GENERATED by `make crds`")
    docs = list(yaml.safe_load_all(result.output))
    assert [d["metadata"]["name"] for d in docs] == [c["metadata"]["name"] for c in CRDS]


def _rule_nodes() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, node in _all_nodes():
        if node.get("x-kubernetes-validations"):
            yield path, node


def test_cel_field_paths_point_at_declared_fields() -> None:
    for path, node in _rule_nodes():
        for rule in node["x-kubernetes-validations"]:
            if "fieldPath" in rule:
                field = rule["fieldPath"].removeprefix(".")
                assert field in node.get("properties", {}), (path, rule)


def test_values_under_cel_rules_are_bounded() -> None:
    # The API server estimates each rule's cost from maxItems/maxProperties/maxLength and refuses
    # a CRD whose rules could exceed the budget. A rule that compares whole objects (oldSelf)
    # touches every value below it; a rule that iterates touches the list it iterates.
    unbounded = []
    for path, node in _rule_nodes():
        for rule in node["x-kubernetes-validations"]:
            if "oldSelf" in rule["rule"]:
                targets = [(path, node)]
            elif ".all(" in rule["rule"] or ".exists" in rule["rule"]:
                targets = (
                    [(path, node)]
                    if node.get("type") == "array"
                    else [
                        (f"{path}.{name}", child)
                        for name, child in node.get("properties", {}).items()
                        if child.get("type") == "array" and f"self.{name}" in rule["rule"]
                    ]
                )
            else:
                continue
            for target_path, target in targets:
                for sub, child in _walk(target, target_path):
                    kind = child.get("type")
                    if kind == "array" and "maxItems" not in child:
                        unbounded.append(sub)
                    if (
                        kind == "object"
                        and "additionalProperties" in child
                        and ("maxProperties" not in child)
                    ):
                        unbounded.append(sub)
                    if (
                        kind == "string"
                        and child.get("format") != "date-time"
                        and not ({"maxLength", "enum"} & child.keys())
                    ):
                        unbounded.append(sub)
    assert not unbounded, sorted(set(unbounded))


def test_patterns_compile_as_re2() -> None:
    # The API server compiles `pattern` with Go's regexp (RE2 syntax): no look-arounds or
    # back-references. google-re2 speaks the same dialect.
    import re2

    for path, node in _all_nodes():
        if "pattern" in node:
            assert re2.compile(node["pattern"]) is not None, path


def test_defaults_are_valid_against_their_own_schema() -> None:
    # The API server rejects a CRD whose default does not validate (it applies defaults on read).
    import jsonschema

    for path, node in _all_nodes():
        if "default" in node:
            schema = {k: v for k, v in node.items() if k != "default"}
            errors = list(jsonschema.Draft4Validator(schema).iter_errors(node["default"]))
            assert not errors, (path, errors)


def test_list_map_keys_are_required_scalars() -> None:
    for path, node in _all_nodes():
        keys = node.get("x-kubernetes-list-map-keys")
        if keys is None:
            continue
        assert node["x-kubernetes-list-type"] == "map", path
        item = node["items"]
        for key in keys:
            assert key in item.get("required", []) or "default" in item["properties"][key], path
            assert item["properties"][key]["type"] in {"string", "integer", "boolean"}, path


def test_no_unique_items_or_root_additional_properties() -> None:
    for crd in CRDS:
        assert "additionalProperties" not in _root(crd)
    for path, node in _all_nodes():
        assert not node.get("uniqueItems"), path
        if node.get("type") == "array":
            assert isinstance(node.get("items"), dict), path
