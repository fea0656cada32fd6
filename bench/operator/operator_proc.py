"""The operator in a process of its own, for the operator benchmark.

Runs Driftline's operator (``runner.run``: kopf + our handlers, the real ``KubeClient``) against
the API emulator named by ``--kubeconfig``, so the benchmark can read this process's CPU time and
RSS as the operator's own cost (the emulator and the benchmark's pollers live in the parent).
The analysis seam resolves every variant's router to ``<--analysis-url>/<deployment>`` (the
benchmark's fake router stats endpoint, one document per Deployment); no monitor sidecars.

SIGTERM/SIGINT stop it (kopf's own signal handling). With ``--profile FILE`` the whole run is
under cProfile and the stats are written to FILE at exit.

Usage: ``python bench/operator/operator_proc.py --kubeconfig K --analysis-url URL
[--resync 15] [--metrics-port P] [--profile out.prof]`` (``/metrics`` on 127.0.0.1:P)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import logging

import kubernetes
from prometheus_client import CollectorRegistry, start_http_server

from driftline.operator import analysis, runner
from driftline.operator.analysis_http import Endpoints
from driftline.operator.k8s import KubeClient, RetryPolicy
from driftline.operator.metrics import Metrics
from driftline.operator.settings import OperatorSettings


async def operate(kubeconfig: str, analysis_url: str, resync: float, metrics_port: int) -> None:
    kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = kubeconfig
    kubernetes.config.load_kube_config(config_file=kubeconfig)
    settings = OperatorSettings(standalone=True, metrics_port=0, resync_interval=resync)
    registry = CollectorRegistry()
    if metrics_port:  # the benchmark counts reconciles from driftline_reconcile_duration_seconds
        start_http_server(metrics_port, "127.0.0.1", registry=registry)
    client = KubeClient(
        kubernetes.client.ApiClient(), retry=RetryPolicy(attempts=5, base_delay=0.01)
    )

    def resolve(target: analysis.Target) -> Endpoints:
        return Endpoints(routers=(f"{analysis_url.rstrip('/')}/{target.deployment}",), monitors=())

    try:
        await runner.run(settings, metrics=Metrics(registry), cluster=client, resolve=resolve)
    finally:
        client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--analysis-url", required=True)
    parser.add_argument("--resync", type=float, default=15.0)
    parser.add_argument("--profile", default="")
    parser.add_argument("--metrics-port", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    try:
        asyncio.run(operate(args.kubeconfig, args.analysis_url, args.resync, args.metrics_port))
    finally:
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(args.profile)


if __name__ == "__main__":
    main()
