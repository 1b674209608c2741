"""`driftloop serve`: the BentoML service in the foreground (it replaces this process)."""

from __future__ import annotations

import os
import sys

import click

from daemon.commands.state import CliState, pass_state
from daemon.loop.store import bentoml_home
from daemon.serving.config import CONFIG_ENV, ServiceConfig, write_config

SERVICE = "daemon.serving.service:DriftloopService"


@click.command("serve")
@click.option("--host", help="Listen address (default: registry.host).")
@click.option("--port", type=int, help="Port (default: registry.port).")
@pass_state
def serve(state: CliState, host: str | None, port: int | None) -> None:
    """Run the BentoML service: /predict, /feedback, /healthz, /readyz, /metrics; hot-swaps new production models."""
    settings = state.settings
    home = bentoml_home(settings).resolve()
    config = ServiceConfig(registry=settings.registry, ingest=settings.ingest, kafka=settings.kafka, bentoml_home=home)
    path = write_config(config, home / "service.json")
    env = {**os.environ, "BENTOML_HOME": str(home), CONFIG_ENV: str(path.resolve()), "BENTOML_DO_NOT_TRACK": "True",
           "HF_HUB_OFFLINE": "1"}  # fmt: skip
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE,
               "--host", host or settings.registry.host, "--port", str(port or settings.registry.port)]  # fmt: skip
    sys.stdout.flush()
    os.execvpe(command[0], command, env)


COMMANDS = [serve]
