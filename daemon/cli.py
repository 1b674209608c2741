"""The `driftloop` command: global options, settings, and one clear line per error."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from daemon.errors import DriftloopError
from daemon.logs import configure_logging
from daemon.settings import Settings, load_settings, merge, parse_assignment
from drift.errors import DriftError
from ingest.errors import IngestError
from registry.errors import RegistryError

DOMAIN_ERRORS: tuple[type[Exception], ...] = (DriftloopError, IngestError, DriftError, RegistryError)
F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliState:
    """What the global options resolved to; settings are read once, on first use."""

    config_file: Path | None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_file, self.overrides)
            configure_logging(self._settings.log)
        return self._settings


class DriftloopGroup(click.Group):
    """Turns the packages' domain errors into one line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DOMAIN_ERRORS as exc:
            click.echo(f"driftloop: error: {exc}", err=True)
            ctx.exit(getattr(exc, "exit_code", 1))


def pass_state(command: F) -> F:
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(click.get_current_context().find_object(CliState), *args, **kwargs)

    return wrapper  # type: ignore[return-value]


@click.group(cls=DriftloopGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--home", type=click.Path(path_type=Path), help="Home directory (overrides the `home` setting).")
@click.option(
    "--config", "config_file", type=click.Path(path_type=Path), help="Settings file (default ./driftloop.toml)."
)
@click.option("--set", "assignments", multiple=True, metavar="SECTION.KEY=VALUE", help="Override one setting.")
@click.option("--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="Overrides log.level.")
@click.version_option(package_name="driftloop")
@click.pass_context
def cli(
    ctx: click.Context, home: Path | None, config_file: Path | None, assignments: tuple[str, ...], log_level: str | None
) -> None:
    """driftloop keeps a deployed text classifier current from its users' corrections."""
    overrides: dict[str, Any] = {}
    for assignment in assignments:
        overrides = merge(overrides, parse_assignment(assignment))
    if home is not None:
        overrides["home"] = str(home)
    if log_level is not None:
        overrides = merge(overrides, {"log": {"level": log_level}})
    ctx.obj = CliState(config_file=config_file, overrides=overrides)


def register_commands() -> None:
    from daemon import (
        bootstrap_cmd,
        broker_cmd,
        chart_cmd,
        config_cmd,
        demo_cmd,
        drift_cmd,
        feedback_cmd,
        ingest_cmd,
        registry_cmd,
        run_cmd,
    )

    for module in (run_cmd, bootstrap_cmd, config_cmd, feedback_cmd, ingest_cmd, drift_cmd, registry_cmd, chart_cmd,
                   broker_cmd, demo_cmd):  # fmt: skip
        for command in module.COMMANDS:
            cli.add_command(command)


def main() -> None:
    register_commands()
    cli(prog_name="driftloop")
