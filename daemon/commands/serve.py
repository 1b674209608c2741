"""`driftloop serve`: the BentoML service in the foreground (it replaces this process)."""

from __future__ import annotations

import ipaddress
import logging
import os
import sys

import click

from daemon.commands.state import CliState, pass_state
from daemon.loop.store import bentoml_home
from daemon.serving.config import CONFIG_ENV, ServiceConfig, write_config
from daemon.serving.lifeline import ARBITER_ENV
from daemon.serving.tokens import feedback_token, predict_token
from registry.settings import RegistrySettings

SERVICE = "daemon.serving.service:DriftloopService"
log = logging.getLogger(__name__)


@click.command("serve")
@click.option("--host", help="Listen address (default: registry.host).")
@click.option("--port", type=int, help="Port (default: registry.port).")
@pass_state
def serve(state: CliState, host: str | None, port: int | None) -> None:
    """Run the BentoML service: /predict, /feedback, /healthz, /readyz, /metrics; hot-swaps new production models."""
    settings = state.settings
    host = host or settings.registry.host
    registry = checked_tokens(settings.registry, host)
    home = bentoml_home(settings).resolve()
    config = ServiceConfig(registry=registry, ingest=settings.ingest, kafka=settings.kafka, bentoml_home=home)
    path = write_config(config, home / "service.json")
    env = {**os.environ, "BENTOML_HOME": str(home), CONFIG_ENV: str(path.resolve()), "BENTOML_DO_NOT_TRACK": "True",
           "HF_HUB_OFFLINE": "1", ARBITER_ENV: str(os.getpid())}  # fmt: skip
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE,
               "--host", host, "--port", str(port or settings.registry.port)]  # fmt: skip
    sys.stdout.flush()
    os.execvpe(command[0], command, env)


def checked_tokens(registry: RegistrySettings, host: str) -> RegistrySettings:
    """Read the token files now (a bad one is a one-line error here, not in the service's log) and give the
    service their absolute paths; warn when /feedback is open beyond this machine."""
    feedback = feedback_token(registry)
    predict_token(registry)
    if feedback is None and not is_loopback(host):
        log.warning(
            "/feedback accepts corrections from anyone who reaches %s: set registry.feedback_token_file "
            "(or registry.feedback_token) so that only holders of the token change the model",
            host,
        )
    files = {"feedback_token_file": registry.feedback_token_file, "predict_token_file": registry.predict_token_file}
    return registry.model_copy(update={key: file.resolve() for key, file in files.items() if file is not None})


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve to any address
        return False


COMMANDS = [serve]
