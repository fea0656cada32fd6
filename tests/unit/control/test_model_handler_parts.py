"""The Model handler's decisions that need no server: backoff, DriftMonitor choice, preparation.

We test these aspects:
- temporary fetch failures back off exponentially from temporary_error_delay, capped at 5 min;
- the DriftMonitor that sets a Deployment's sidecar flags is the first by name among valid
  monitors that target it (others' monitors and invalid ones are ignored);
- prepare_model fetches, reads and profiles through the source seam, in a temporary folder that
  is gone afterwards, and stops at the first permanent failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import TensorProto, helper
from prometheus_client import CollectorRegistry

from driftline.operator import handlers, names
from driftline.operator.api import Model
from driftline.operator.artifacts import FetchingSource, Which
from driftline.operator.errors import ArtifactInvalid
from driftline.operator.metrics import Metrics
from driftline.operator.settings import OperatorSettings


class Monitors:
    """Just enough of the cluster seam: DriftMonitors to list."""

    def __init__(self, items: list[dict[str, Any]]) -> None:
        self.items = items

    async def list_objects(
        self, api_version: str, kind: str, namespace: str, selector: Mapping[str, str]
    ) -> list[dict[str, Any]]:
        assert (kind, namespace) == ("DriftMonitor", "ml")
        return self.items


def ctx(cluster: Any = None) -> handlers.Context:
    return handlers.Context(
        settings=OperatorSettings(temporary_error_delay=10),
        metrics=Metrics(CollectorRegistry()),
        cluster=cluster,
    )


def monitor(name: str, deployment: str, size: int = 500) -> dict[str, Any]:
    return {
        "apiVersion": names.API_VERSION,
        "kind": "DriftMonitor",
        "metadata": {"name": name, "namespace": "ml"},
        "spec": {"deployment": deployment, "window": {"size": size}},
    }


def test_temporary_failures_back_off_exponentially() -> None:
    c = ctx()
    assert [handlers.model_backoff(c, r) for r in (0, 1, 2, 5, 50)] == [10, 20, 40, 300, 300]


def test_the_first_valid_monitor_of_the_deployment_is_chosen() -> None:
    items = [
        monitor("z", "churn", 900),
        monitor("a", "other", 100),
        {**monitor("b", "churn"), "spec": {"deployment": "churn", "window": {"size": 1}}},
        monitor("c", "churn", 700),
    ]
    spec = asyncio.run(handlers.drift_monitor_for(ctx(Monitors(items)).cluster, "ml", "churn"))
    assert spec is not None and spec.window.size == 700
    assert (
        asyncio.run(handlers.drift_monitor_for(ctx(Monitors(items)).cluster, "ml", "none")) is None
    )


def onnx_bytes() -> bytes:
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 2])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    proto.ir_version = 8
    return proto.SerializeToString()


class Recording(FetchingSource):
    """The real source, remembering where it wrote."""

    def __init__(self, base: Path) -> None:
        super().__init__(base=base)
        object.__setattr__(self, "dests", [])

    def fetch(
        self, uri: str, sha256: str, dest: Path, *, name: str, limit: int, what: Which
    ) -> Path:
        self.dests.append(dest)  # type: ignore[attr-defined]
        return super().fetch(uri, sha256, dest, name=name, limit=limit, what=what)


def model(tmp: Path, ref_columns: tuple[str, ...]) -> Model:
    (tmp / "m.onnx").write_bytes(onnx_bytes())
    buf = io.BytesIO()
    np.savez(buf, **{c: np.arange(50.0) for c in ref_columns})
    (tmp / "ref.npz").write_bytes(buf.getvalue())

    def sha(p: str) -> str:
        return hashlib.sha256((tmp / p).read_bytes()).hexdigest()

    return Model.from_manifest(
        {
            "apiVersion": names.API_VERSION,
            "kind": "Model",
            "metadata": {"name": "m", "namespace": "ml"},
            "spec": {
                "family": "tiny",
                "version": "v1",
                "source": {"uri": "file://m.onnx", "sha256": sha("m.onnx")},
                "reference": {"uri": "file://ref.npz", "sha256": sha("ref.npz")},
            },
        }
    )


def test_prepare_fetches_reads_and_profiles_in_a_temporary_folder(tmp_path: Path) -> None:
    source = Recording(tmp_path)
    prepared = handlers.prepare_model(source, model(tmp_path, ("f0", "f1", "label")))
    assert prepared.info.opset == 13 and prepared.info.size_bytes == len(onnx_bytes())
    assert prepared.profile is not None and prepared.profile.rows == 50
    assert len(source.dests) == 2  # type: ignore[attr-defined]
    assert not source.dests[0].exists()  # type: ignore[attr-defined]


def test_prepare_stops_at_a_column_mismatch(tmp_path: Path) -> None:
    with pytest.raises(ArtifactInvalid) as info:
        handlers.prepare_model(FetchingSource(tmp_path), model(tmp_path, ("f0", "x")))
    assert info.value.reason == "ReferenceColumnsMismatch"
    assert "no column for 'f1'" in info.value.message
