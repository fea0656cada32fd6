"""The kubectl plugin's ``Api`` over ``KubeClient``: the one place the plugin meets the cluster.

Loaded only when a plugin command runs (it imports the Kubernetes client through
``driftline.operator.k8s``). Each call runs the client's coroutine to completion: the plugin is a
short-lived, one-request-at-a-time program.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from driftline.operator import names
from driftline.operator.k8s import KubeconfigError, KubeconfigTarget, client_from_kubeconfig
from driftline.operator.plugin import PluginError

__all__ = ["KubeApi", "connect"]


class KubeApi:
    """``plugin.Api`` over a ``KubeClient`` from the kubeconfig.

    Args:
        target: the client and where it points.
    """

    def __init__(self, target: KubeconfigTarget) -> None:
        self._client = target.client
        self.namespace = target.namespace
        self.server = target.server

    def get(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The Driftline Deployment, or ``None`` when absent."""
        return asyncio.run(
            self._client.get(names.API_VERSION, names.DEPLOYMENT.kind, namespace, name)
        )

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        """Driftline Deployments in ``namespace`` (every namespace when ``None``)."""
        return asyncio.run(
            self._client.list_in(names.API_VERSION, names.DEPLOYMENT.kind, namespace)
        )

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """Merge-patch the Deployment; its new state, or ``None`` when absent."""
        return asyncio.run(
            self._client.merge_patch(
                names.API_VERSION, names.DEPLOYMENT.kind, namespace, name, body
            )
        )

    def close(self) -> None:
        """Close pooled connections."""
        self._client.close()


def connect(kubeconfig: str | None, context: str | None) -> KubeApi:
    """Open the ``Api`` for ``kubeconfig`` and ``context`` (``None``: kubectl's defaults).

    Raises:
        PluginError: the kubeconfig is missing, unreadable or lacks the context.
    """
    # urllib3 logs connection failures as warnings; the plugin reports them in one line itself.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    try:
        return KubeApi(client_from_kubeconfig(kubeconfig, context))
    except KubeconfigError as e:
        raise PluginError(str(e)) from e
