"""The ``driftline`` and ``kubectl-driftline`` command lines.

Every role of the one image is a subcommand here (``driftline operator|serve|route|…``).
Subcommands that belong to the data plane are defined in ``driftline.serving`` and only assembled
here, so that the data plane never imports the control plane. Heavy imports (kopf, onnxruntime,
the Kubernetes client) happen inside the command that needs them, so ``driftline --help`` is fast.
"""

from __future__ import annotations

import click

from driftline.operator import __version__, crds_command, plugin, validate_command
from driftline.operator.command import operator_command
from driftline.operator.local import commands as local_commands
from driftline.serving import cli as serving_cli
from driftline.serving import load_cli
from driftline.serving.monitor import cli as monitor_cli
from driftline.serving.router.cli import route

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="driftline")
def driftline() -> None:
    """Driftline: take ONNX models to production safely.

    One program for every role: the Kubernetes operator, the model server, the router, the drift
    monitor, the offline drift tool and local mode. Run ``driftline COMMAND --help`` for the
    details of each command.
    """


@driftline.command()
def version() -> None:
    """Print Driftline's version and the API group/version it serves."""
    from driftline.operator import names

    click.echo(f"driftline {__version__} (API {names.API_VERSION})")


driftline.add_command(crds_command.crds)
driftline.add_command(validate_command.validate)
driftline.add_command(serving_cli.serve)
driftline.add_command(serving_cli.fetch)
driftline.add_command(monitor_cli.profile)
driftline.add_command(monitor_cli.drift)
driftline.add_command(monitor_cli.monitor)
driftline.add_command(route)
driftline.add_command(load_cli.load)
for _local in (
    local_commands.up,
    local_commands.status,
    local_commands.apply,
    local_commands.promote,
    local_commands.abort,
    local_commands.pause,
    local_commands.resume,
    local_commands.retry,
    local_commands.down,
):
    driftline.add_command(_local)


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "-V", "--version", prog_name="kubectl-driftline")
def kubectl_driftline() -> None:
    """Driftline's kubectl plugin: ``kubectl driftline COMMAND``.

    Installed as the ``kubectl-driftline`` executable on your PATH, kubectl finds it as a plugin.
    """


kubectl_driftline.add_command(version)
for _command in plugin.commands:
    kubectl_driftline.add_command(_command)

driftline.add_command(operator_command)


def main() -> None:
    """Entry point of the ``driftline`` console script."""
    driftline()


def kubectl_main() -> None:
    """Entry point of the ``kubectl-driftline`` console script (kubectl plugin)."""
    kubectl_driftline()
