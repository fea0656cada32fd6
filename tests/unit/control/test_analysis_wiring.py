"""How the operator process picks where analysis reads its numbers.

We test these aspects:
- ``analysis_provider``: the HTTP provider by default, the Prometheus one when the settings say so,
  windowed by the policy's interval;
- ``k8s.ready_pod_ips``: only Running, Ready, not terminating pods with an IP count, sorted, once.
"""

from __future__ import annotations

from typing import Any

import httpx

from driftline.operator.analysis_http import Endpoints, HttpProvider
from driftline.operator.analysis_prometheus import PrometheusProvider
from driftline.operator.k8s import ready_pod_ips
from driftline.operator.rollout import Policy
from driftline.operator.runner import analysis_provider
from driftline.operator.settings import OperatorSettings


async def test_the_settings_choose_the_provider() -> None:
    async with httpx.AsyncClient() as client:
        default = analysis_provider(OperatorSettings(), client, lambda t: Endpoints())
        assert isinstance(default(Policy()), HttpProvider)
        prom = OperatorSettings(analysis_provider="prometheus", prometheus_url="http://p:9090")
        chosen = analysis_provider(prom, client, lambda t: Endpoints())(Policy(interval_s=45))
        assert isinstance(chosen, PrometheusProvider)


def _pod(ip: str | None, *, phase: str = "Running", ready: str = "True", **meta: Any) -> dict:
    status: dict[str, Any] = {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}
    if ip is not None:
        status["podIP"] = ip
    return {"metadata": {"name": "p", **meta}, "status": status}


def test_only_serving_pods_count() -> None:
    pods = [
        _pod("10.0.0.2"),
        _pod("10.0.0.1"),
        _pod("10.0.0.1"),  # the same IP twice (a stale list): once
        _pod("10.0.0.3", ready="False"),
        _pod("10.0.0.4", phase="Pending"),
        _pod("10.0.0.5", deletionTimestamp="2026-01-01T00:00:00Z"),
        _pod(None),
        {"metadata": {}, "status": "junk"},
    ]
    assert ready_pod_ips(pods) == ("10.0.0.1", "10.0.0.2")
