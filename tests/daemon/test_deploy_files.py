"""docker-compose.yml and the Dockerfile: every setting they pass exists, every command they run exists."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
import yaml

from daemon.cli import cli, register_commands
from daemon.settings import flatten, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DRIFTLOOP_SERVICES = ("driftloop", "service")
register_commands()


def setting_key(variable: str) -> str:
    section, _, key = variable.removeprefix("DRIFTLOOP_").lower().partition("_")
    return f"{section}.{key}" if key else section


def test_compose_runs_kafka_in_kraft_mode_from_the_official_image() -> None:
    kafka = COMPOSE["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


@pytest.mark.parametrize("service", DRIFTLOOP_SERVICES)
def test_every_setting_passed_exists_and_is_valid(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = COMPOSE["services"][service]["environment"]
    known = {key for key, _, _ in flatten(load_settings())}
    assert [name for name in environment if setting_key(name) not in known] == []
    for name, value in environment.items():
        monkeypatch.setenv(name, str(value))
    settings = load_settings()
    assert settings.kafka.bootstrap == "kafka:9092"


@pytest.mark.parametrize("service", DRIFTLOOP_SERVICES)
def test_every_command_run_exists(service: str) -> None:
    name, *arguments = COMPOSE["services"][service]["command"]
    command = cli.commands[name]
    options = {
        option for parameter in command.params if isinstance(parameter, click.Option) for option in parameter.opts
    }
    assert [argument for argument in arguments if argument.startswith("--") and argument not in options] == []
    assert "driftloop-home:/var/lib/driftloop" in COMPOSE["services"][service]["volumes"]


def test_dockerfile_installs_cpu_torch_first_and_runs_driftloop() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.index("torch==2.13.0") < dockerfile.index("pip install .")
    assert 'ENTRYPOINT ["driftloop"]' in dockerfile
    home = next(line for line in dockerfile.splitlines() if "DRIFTLOOP_HOME=" in line)
    assert home.strip().endswith("/var/lib/driftloop")
