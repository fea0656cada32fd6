"""Route table validation: good tables load, bad ones are rejected whole with the field named."""

from __future__ import annotations

import json

import pytest

from driftline.serving.router.table import (
    Endpoint,
    RouteTableError,
    parse_table,
    table_from_mapping,
)

GOOD_YAML = """
version: 3
sticky_header: X-User-Id
stable:
  model_version: "1"
  weight: 90
  endpoints: ["http://127.0.0.1:8001", "127.0.0.1:8002"]
  monitor: http://127.0.0.1:9001/
canary:
  model_version: "2"
  weight: 10
  endpoints: ["http://127.0.0.1:8003"]
  model_name: churn
shadow:
  model_version: "3"
  mirror_percent: 50
  endpoints: ["http://[::1]:8004"]
"""


def _table(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = {
        "version": 1,
        "stable": {"model_version": "1", "weight": 80, "endpoints": ["http://127.0.0.1:1"]},
        "canary": {"model_version": "2", "weight": 20, "endpoints": ["http://127.0.0.1:2"]},
    }
    base.update(overrides)
    return base


def test_loading_a_full_yaml_table() -> None:
    table = parse_table(GOOD_YAML)
    assert table.version == 3
    assert table.sticky_header == "x-user-id"
    assert table.stable.endpoints == (
        Endpoint(host="127.0.0.1", port=8001),
        Endpoint(host="127.0.0.1", port=8002),
    )
    assert table.stable.monitor == Endpoint(host="127.0.0.1", port=9001)
    assert table.canary is not None and table.canary.model_name == "churn"
    assert table.shadow is not None and table.shadow.mirror_percent == 50
    assert table.shadow.endpoints[0].url == "http://[::1]:8004"
    assert table.weight("stable") == 90 and table.weight("shadow") == 0


def test_json_is_accepted_and_digest_is_content_based() -> None:
    first = parse_table(json.dumps(_table()))
    second = parse_table(json.dumps(_table()).encode())
    assert first == second
    assert first.digest() == second.digest()
    assert first.digest() != parse_table(json.dumps(_table(version=2))).digest()


def test_stable_alone_must_take_100() -> None:
    alone = {"model_version": "1", "weight": 100, "endpoints": ["h:1"]}
    table = table_from_mapping(_table(stable=alone, canary=None))
    assert table.canary is None and table.stable.weight == 100
    with pytest.raises(RouteTableError, match=r"got stable.weight=80 = 80"):
        table_from_mapping(_table(canary=None))


@pytest.mark.parametrize(
    ("change", "field", "problem"),
    [
        (
            {"canary": {"model_version": "2", "weight": 30, "endpoints": ["127.0.0.1:2"]}},
            "(table)",
            "must sum to 100, got stable.weight=80 + canary.weight=30 = 110",
        ),
        (
            {"canary": {"model_version": "2", "weight": 120, "endpoints": ["127.0.0.1:2"]}},
            "canary.weight",
            "less than or equal to 100",
        ),
        (
            {"canary": {"model_version": "2", "weight": -1, "endpoints": ["127.0.0.1:2"]}},
            "canary.weight",
            "greater than or equal to 0",
        ),
        (
            {"canary": {"model_version": "2", "weight": 20, "endpoints": []}},
            "canary.endpoints",
            "at least 1",
        ),
        (
            {"canary": {"model_version": "2", "weight": 20, "endpoints": ["https://h:1"]}},
            "canary.endpoints.0",
            "only http://",
        ),
        (
            {"canary": {"model_version": "2", "weight": 20, "endpoints": ["h:99999"]}},
            "canary.endpoints.0",
            "1..65535",
        ),
        (
            {"canary": {"model_version": "2", "weight": 20, "endpoints": ["http://h:1/v2"]}},
            "canary.endpoints.0",
            "without a path",
        ),
        (
            {"canary": {"model_version": "2", "weight": 20, "endpoints": ["h:1", "h:1"]}},
            "canary.endpoints",
            "listed twice",
        ),
        (
            {"canary": {"model_version": "", "weight": 20, "endpoints": ["h:1"]}},
            "canary.model_version",
            "at least 1 character",
        ),
        (
            {"canary": {"model_version": "2", "weight": 20, "endpoints": ["h:1"], "x": 1}},
            "canary.x",
            "Extra inputs are not permitted",
        ),
        (
            {"shadow": {"model_version": "3", "mirror_percent": 101, "endpoints": ["h:1"]}},
            "shadow.mirror_percent",
            "less than or equal to 100",
        ),
        (
            {
                "shadow": {
                    "model_version": "3",
                    "weight": 5,
                    "mirror_percent": 1,
                    "endpoints": ["h:1"],
                }
            },
            "shadow.weight",
            "Extra inputs",
        ),
        ({"sticky_header": "x user"}, "sticky_header", "not a valid HTTP header name"),
        ({"version": -1}, "version", "greater than or equal to 0"),
        (
            {
                "stable": {
                    "model_version": "1",
                    "weight": 80,
                    "endpoints": ["h:1"],
                    "monitor": "ftp://m",
                }
            },
            "stable.monitor",
            "only http://",
        ),
        (
            {
                "stable": {
                    "model_version": "1",
                    "weight": 80,
                    "endpoints": ["h:1"],
                    "model_name": "a/b",
                }
            },
            "stable.model_name",
            "one path segment",
        ),
    ],
)
def test_rejecting_a_bad_field_names_it(
    change: dict[str, object], field: str, problem: str
) -> None:
    with pytest.raises(RouteTableError) as info:
        table_from_mapping(_table(**change))
    message = str(info.value)
    assert f"{field}: " in message
    assert problem in message


def test_rejecting_a_table_without_stable() -> None:
    data = _table()
    del data["stable"]
    with pytest.raises(RouteTableError, match=r"stable: Field required"):
        table_from_mapping(data)


@pytest.mark.parametrize("text", ["[1, 2]", "just a string", "", "{a: [1, 2"])
def test_rejecting_text_that_is_not_a_mapping(text: str) -> None:
    with pytest.raises(RouteTableError, match="route table"):
        parse_table(text)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(RouteTableError) as info:
        table_from_mapping(
            _table(
                version="x",
                canary={"model_version": "2", "weight": 20, "endpoints": ["nope"]},
            )
        )
    assert "version: " in str(info.value)
    assert "canary.endpoints.0: " in str(info.value)


def test_tables_are_frozen() -> None:
    table = table_from_mapping(_table())
    with pytest.raises(ValueError, match="frozen"):
        table.version = 9  # type: ignore[misc]
