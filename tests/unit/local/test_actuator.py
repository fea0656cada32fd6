"""The local actuator's pure decisions: command lines and the router's table.

We test these aspects: the table lists only variants with a ready server and gives a canary
without one its share back to stable; weights always sum to 100; the shadow is mirrored with its
percent; a stable without a ready server means no table yet; the table the actuator writes is one
the router accepts (its own parser); servers are named after the Model, not the role; command
lines bind 127.0.0.1 and carry the batching settings; autoscaling runs its minimum locally.
"""

from __future__ import annotations

from pathlib import Path

from driftline.operator import plan
from driftline.operator.api import Deployment, Model
from driftline.operator.local import actuator
from driftline.serving.router.table import table_from_mapping


def _model(name: str) -> Model:
    return Model.from_manifest(
        {
            "apiVersion": "driftline.dev/v1alpha1",
            "kind": "Model",
            "metadata": {"name": name},
            "spec": {
                "family": "churn",
                "version": name.rsplit("-", 1)[1],
                "source": {"uri": "file:///m.onnx", "sha256": "0" * 64},
            },
        }
    )


def _topology(status: dict[str, object] | None = None, **spec: object) -> plan.Topology:
    dep = Deployment.from_manifest(
        {
            "apiVersion": "driftline.dev/v1alpha1",
            "kind": "Deployment",
            "metadata": {"name": "churn"},
            "spec": {"model": "churn-v2", "traffic": {"stickyHeader": "x-user"}, **spec},
            **({"status": status} if status else {}),
        }
    )
    models = {m: _model(m) for m in ("churn-v1", "churn-v2", "churn-v3")}
    return plan.desired(dep, models)


CANARY = {"stableModel": "churn-v1", "canaryModel": "churn-v2", "canaryWeight": 20}
SHADOW = {"stableModel": "churn-v1", "shadowModel": "churn-v2"}


def test_routing_a_ready_canary_with_its_weight() -> None:
    topo = _topology(CANARY)
    table = actuator.route_table(
        topo,
        {
            "stable": actuator.VariantEndpoints(("http://127.0.0.1:1",), "http://127.0.0.1:9"),
            "canary": actuator.VariantEndpoints(("http://127.0.0.1:2",)),
        },
        version=3,
    )
    assert table is not None
    assert table["version"] == 3
    assert table["sticky_header"] == "x-user"
    assert table["stable"] == {
        "model_version": "churn-v1",
        "endpoints": ["http://127.0.0.1:1"],
        "model_name": "churn",
        "monitor": "http://127.0.0.1:9",
        "weight": 80,
    }
    assert table["canary"]["weight"] == 20  # type: ignore[index]
    parsed = table_from_mapping(table)
    assert parsed.weight("canary") == 20 and parsed.weight("stable") == 80


def test_a_canary_without_a_ready_server_gets_no_traffic_yet() -> None:
    topo = _topology(CANARY)
    table = actuator.route_table(
        topo,
        {
            "stable": actuator.VariantEndpoints(("http://127.0.0.1:1",)),
            "canary": actuator.VariantEndpoints(()),
        },
        version=1,
    )
    assert table is not None and "canary" not in table
    assert table["stable"]["weight"] == 100  # type: ignore[index]
    table_from_mapping(table)


def test_mirroring_a_ready_shadow() -> None:
    topo = _topology(SHADOW, rollout={"shadow": {"percent": 40}})
    table = actuator.route_table(
        topo,
        {
            "stable": actuator.VariantEndpoints(("http://127.0.0.1:1",)),
            "shadow": actuator.VariantEndpoints(("http://127.0.0.1:3",)),
        },
        version=1,
    )
    assert table is not None
    assert table["shadow"]["mirror_percent"] == 40  # type: ignore[index]
    assert table["stable"]["weight"] == 100  # type: ignore[index]
    assert table_from_mapping(table).shadow is not None


def test_no_table_until_stable_has_a_ready_server() -> None:
    assert actuator.route_table(_topology(), {"stable": actuator.VariantEndpoints(())}, 1) is None
    assert actuator.route_table(_topology(), {}, 1) is None


def test_command_lines_bind_localhost_and_carry_batching() -> None:
    topo = _topology(CANARY, batching={"maxBatchSize": 16, "maxDelayMs": 3})
    argv = actuator.serve_argv(
        topo,
        model="churn-v2",
        role="canary",
        model_path=Path("/m.onnx"),
        port=4321,
        monitor_url="http://127.0.0.1:9",
    )
    text = " ".join(argv)
    assert "serve --model /m.onnx --name churn --version churn-v2 --variant canary" in text
    assert "--host 127.0.0.1 --port 4321" in text
    assert "--max-batch-size 16 --max-delay-ms 3" in text
    assert argv[-2:] == ("--monitor-url", "http://127.0.0.1:9")
    route = " ".join(actuator.route_argv(Path("/s/route-churn.yaml"), 8000))
    assert route.endswith("route --table /s/route-churn.yaml --host 127.0.0.1 --port 8000")
    mon = " ".join(actuator.monitor_argv(topo, profile=Path("/p.json"), port=9, min_samples=5000))
    assert "monitor --profile /p.json --host 127.0.0.1 --port 9" in mon
    assert "--window-rows 1000 --min-samples 1000" in mon  # never more than the window holds


def test_naming_servers_after_the_model_and_counting_replicas() -> None:
    assert actuator.server_name("churn", "churn-v2", 0) == "churn-churn-v2-0"
    assert actuator.monitor_name("churn", "churn-v2") == "churn-churn-v2-monitor"
    topo = _topology(CANARY, autoscaling={"minReplicas": 2, "maxReplicas": 5})
    assert actuator.replicas(topo, "stable") == 2
    assert actuator.replicas(_topology(CANARY, replicas=3), "stable") == 3
    assert actuator.replicas(_topology(), "canary") == 0
    assert actuator.models_in(topo, ("churn-v0",)) == {
        "churn-v0": None,
        "churn-v1": "stable",
        "churn-v2": "canary",
    }
