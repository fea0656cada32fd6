"""Fixtures for the operator's integration tests (the environment itself is in kube_env.py).

- ``k8s``: the API emulator (``kube_env.KMockThread``) on 127.0.0.1, one per test.
- ``kubeconfig``: a kubeconfig pointing kopf and the ``kubernetes`` client at it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import kubernetes
import pytest
from kube_env import KMockThread, write_kubeconfig


@pytest.fixture
def k8s() -> Iterator[KMockThread]:
    server = KMockThread().start()
    yield server
    server.stop()


@pytest.fixture
def kubeconfig(k8s: KMockThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    path = write_kubeconfig(tmp_path / "kubeconfig", k8s.url)
    monkeypatch.setenv("KUBECONFIG", str(path))  # kubectl subprocesses
    # The kubernetes client reads $KUBECONFIG once, at import time, and kopf's login_via_client()
    # calls load_kube_config() without a path: redirect that default too.
    monkeypatch.setattr(kubernetes.config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(path))
    kubernetes.config.load_kube_config(config_file=str(path))
    yield path
    kubernetes.client.Configuration.set_default(None)


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect garbage after each test, so a leaked socket or session fails the test that leaked
    it (with filterwarnings=error), not whichever test the collector happens to run in."""
    yield
    gc.collect()
