"""``k8s.client_from_kubeconfig`` resolves context, namespace and server like kubectl."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from driftline.operator.k8s import KubeconfigError, client_from_kubeconfig


def _write(path: Path) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "dev",
                "clusters": [
                    {"name": "a", "cluster": {"server": "http://127.0.0.1:1"}},
                    {"name": "b", "cluster": {"server": "http://127.0.0.1:2"}},
                ],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [
                    {"name": "dev", "context": {"cluster": "a", "user": "u"}},
                    {"name": "prod", "context": {"cluster": "b", "user": "u", "namespace": "ml"}},
                ],
            }
        )
    )
    return path


def test_current_context_without_namespace_means_default(tmp_path: Path) -> None:
    target = client_from_kubeconfig(str(_write(tmp_path / "c")), None)
    target.client.close()
    assert (target.context, target.namespace, target.server) == (
        "dev",
        "default",
        "http://127.0.0.1:1",
    )


def test_a_named_context_brings_its_namespace_and_server(tmp_path: Path) -> None:
    target = client_from_kubeconfig(str(_write(tmp_path / "c")), "prod")
    target.client.close()
    assert (target.context, target.namespace, target.server) == (
        "prod",
        "ml",
        "http://127.0.0.1:2",
    )


def test_kubeconfig_env_lists_several_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KUBECONFIG", f"{tmp_path / 'absent'}:{_write(tmp_path / 'c')}")
    target = client_from_kubeconfig(None, None)
    target.client.close()
    assert target.context == "dev"


def test_errors_name_the_path_or_context(tmp_path: Path) -> None:
    with pytest.raises(KubeconfigError, match=r"no kubeconfig found at .*nothing-here"):
        client_from_kubeconfig(str(tmp_path / "nothing-here"), None)
    with pytest.raises(KubeconfigError, match=r"context 'staging' not found .*dev, prod"):
        client_from_kubeconfig(str(_write(tmp_path / "c")), "staging")
    broken = tmp_path / "broken"
    broken.write_text("clusters: [unclosed\n")
    with pytest.raises(KubeconfigError, match="cannot use kubeconfig"):
        client_from_kubeconfig(str(broken), None)
