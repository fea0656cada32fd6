"""Fixtures of the rollout end-to-end tests: emulator, kubeconfig, models and the pod pool.

- ``k8s`` / ``kubeconfig``: the API emulator and a kubeconfig pointing kopf and the ``kubernetes``
  client at it (as in ``tests/integration/operator_env``).
- ``models``: the quickstart's real ONNX models plus two built here for the failure scenarios,
  each with the reference profile its monitor loads (``driftline profile``, as the operator's
  reference profile would be).
- ``pool``: the "pods" (serve + monitor pairs) shared by the module's tests, stopped by pid.
"""

from __future__ import annotations

import gc
import hashlib
import importlib.util
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes
import numpy as np
import onnx
import pytest
import yaml
from kube_env import KMockThread, write_kubeconfig
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[3]


def load_harness() -> ModuleType:
    name = "driftline_rollout_e2e_harness"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parent / "harness.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


harness = load_harness()


@pytest.fixture
def k8s() -> Iterator[KMockThread]:
    server = KMockThread().start()
    yield server
    server.stop()


@pytest.fixture
def kubeconfig(k8s: KMockThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = write_kubeconfig(tmp_path / "kubeconfig", k8s.url)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    kubernetes.config.load_kube_config(config_file=str(path))
    yield path
    kubernetes.client.Configuration.set_default(None)


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    yield
    gc.collect()


# -------------------------------------------------------------------------------------- models
def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _graph_model(graph: onnx.GraphProto) -> bytes:
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    onnx.checker.check_model(proto)
    return proto.SerializeToString()


def _io() -> tuple[list[onnx.ValueInfoProto], list[onnx.ValueInfoProto]]:
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 7])]
    outputs = [
        helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
        helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 2]),
    ]
    return inputs, outputs


def _outputs_from(score: str, nodes: list[onnx.NodeProto]) -> None:
    """label = score > 0.5, probabilities = [1 - score, score] (score: float [N])."""
    nodes += [
        helper.make_node("Greater", [score, "half"], ["positive"]),
        helper.make_node("Cast", ["positive"], ["label"], to=TensorProto.INT64),
        helper.make_node("Unsqueeze", [score, "axis1"], ["p1"]),
        helper.make_node("Sub", ["one", "p1"], ["p0"]),
        helper.make_node("Concat", ["p0", "p1"], ["probabilities"], axis=1),
    ]


def _constants() -> list[onnx.TensorProto]:
    return [
        numpy_helper.from_array(np.array(0.5, dtype=np.float32), "half"),
        numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axis1"),
    ]


def broken_model() -> bytes:
    """A model that loads and warms up (a row of zeros) but fails on most real rows.

    It looks its score up by the ``region`` column (codes 0..4) in a table of one entry: region 0
    works, any other region makes ONNX Runtime's Gather fail ("indices element out of data
    bounds"), so the server answers 500: a model with a bug only production data reaches.
    """
    inputs, outputs = _io()
    nodes = [
        helper.make_node("Gather", ["input", "region_col"], ["region"], axis=1),
        helper.make_node("Cast", ["region"], ["region_idx"], to=TensorProto.INT64),
        helper.make_node("Gather", ["lookup", "region_idx"], ["score"], axis=0),
    ]
    _outputs_from("score", nodes)
    init = [
        *_constants(),
        numpy_helper.from_array(np.array(5, dtype=np.int64), "region_col"),
        numpy_helper.from_array(np.array([0.3], dtype=np.float32), "lookup"),
    ]
    return _graph_model(helper.make_graph(nodes, "broken", inputs, outputs, init))


SLOW_WIDTH = 2048
SLOW_LAYERS = 24


def slow_model() -> bytes:
    """A model that answers right but slowly: the row goes through a chain of wide MatMuls.

    About 200 MFLOP and 24 reads of a 16 MiB weight per row: tens of milliseconds on this box,
    against well under ten for the quickstart models (the latency a heavier model brings).
    """
    inputs, outputs = _io()
    nodes = [helper.make_node("MatMul", ["input", "w_in"], ["h0"])]
    for i in range(SLOW_LAYERS):
        nodes.append(helper.make_node("MatMul", [f"h{i}", "w"], [f"h{i + 1}"]))
    nodes += [
        helper.make_node("ReduceMean", [f"h{SLOW_LAYERS}"], ["mean"], axes=[1], keepdims=0),
        helper.make_node("Sigmoid", ["mean"], ["score"]),
    ]
    _outputs_from("score", nodes)
    rng = np.random.default_rng(0)
    init = [
        *_constants(),
        numpy_helper.from_array(
            (rng.standard_normal((7, SLOW_WIDTH)) * 0.01).astype(np.float32), "w_in"
        ),
        numpy_helper.from_array(
            (np.eye(SLOW_WIDTH, dtype=np.float32) * 0.999).astype(np.float32), "w"
        ),
    ]
    # ReduceMean with an ``axes`` attribute is opset 17's form.
    return _graph_model(helper.make_graph(nodes, "slow", inputs, outputs, init))


@dataclass
class ModelSet:
    """Model manifests (by name) and the files their pods need."""

    manifests: dict[str, dict[str, Any]]
    files: dict[str, Any]
    traffic: np.ndarray


def _profile(reference: Path, features: Path, model_sha: str, out: Path) -> Path:
    """``driftline profile`` (the command, in this process: five interpreter starts saved)."""
    from click.testing import CliRunner

    from driftline.serving.monitor import cli as monitor_cli

    argv = [
        "--reference",
        str(reference),
        "--out",
        str(out),
        "--features",
        str(features),
        "--model-sha256",
        model_sha,
    ]
    done = CliRunner().invoke(monitor_cli.profile, argv, catch_exceptions=False)
    assert done.exit_code == 0, done.output
    return out


@pytest.fixture(scope="module")
def models(
    quickstart_artifacts: Path,
    quickstart_train: ModuleType,
    tmp_path_factory: pytest.TempPathFactory,
) -> ModelSet:
    out = tmp_path_factory.mktemp("rollout-e2e-models")
    (out / "model-broken.onnx").write_bytes(broken_model())
    (out / "model-slow.onnx").write_bytes(slow_model())
    # Training data of a population the production traffic is not from (shifted by 2 sd).
    x, y = quickstart_train.make_dataset(5000, 11, shift=2.0)
    columns = {name: x[:, j] for j, name in enumerate(quickstart_train.FEATURES)}
    np.savez(out / "reference-shifted.npz", **columns, label=y)
    template = yaml.safe_load(
        (ROOT / "examples" / "quickstart" / "manifests" / "model-v1.yaml").read_text()
    )
    features = out / "features.json"
    features.write_text(json.dumps(template["spec"]["features"]))
    reference = quickstart_artifacts / "reference.npz"
    wanted = {
        "churn-v1": (quickstart_artifacts / "model-v1.onnx", reference),
        "churn-v2": (quickstart_artifacts / "model-v2.onnx", reference),
        "churn-broken": (out / "model-broken.onnx", reference),
        "churn-slow": (out / "model-slow.onnx", reference),
        "churn-shifted": (quickstart_artifacts / "model-v3.onnx", out / "reference-shifted.npz"),
        # the quickstart's v3: a model that agrees with v1 on ~41% of the traffic's rows
        "churn-v3": (quickstart_artifacts / "model-v3.onnx", reference),
    }
    manifests: dict[str, dict[str, Any]] = {}
    files: dict[str, Any] = {}
    for name, (artifact, ref) in wanted.items():
        digest = sha256(artifact)
        body = json.loads(json.dumps(template))
        body["metadata"] = {"name": name, "labels": template["metadata"]["labels"]}
        body["spec"]["version"] = name.removeprefix("churn-")
        body["spec"]["source"] = {"uri": f"file://{artifact}", "sha256": digest}
        body["spec"]["reference"] = {"uri": f"file://{ref}", "sha256": sha256(ref)}
        body["spec"].pop("lineage", None)
        manifests[name] = body
        profile = _profile(ref, features, digest, out / f"{name}.profile.json")
        files[name] = harness.ModelFiles(artifact, profile)
    tx, _ = quickstart_train.make_dataset(2000, 1)
    return ModelSet(manifests, files, tx.astype(np.float32))


@pytest.fixture(scope="module")
def pool(models: ModelSet, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    pods = harness.Pool(tmp_path_factory.mktemp("rollout-e2e-pods"), models.files)
    try:
        yield pods
    finally:
        pods.stop_all()
