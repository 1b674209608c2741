"""The `driftloop` command: global options, settings, and one clear line per error."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from common.errors import DriftloopError
from daemon.commands.state import CliState
from daemon.settings import merge, parse_assignment


class DriftloopGroup(click.Group):
    """Turns any driftloop error into one line on stderr and the error's exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DriftloopError as exc:
            click.echo(f"driftloop: error: {exc}", err=True)
            ctx.exit(exc.exit_code)


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
    from daemon.commands import (
        audit,
        bootstrap,
        broker,
        chart,
        config,
        demo,
        drift,
        feedback,
        gc,
        ingest,
        registry,
        run,
        serve,
        train,
    )

    modules = (run, bootstrap, config, feedback, audit, ingest, drift, train, registry, gc, serve, chart, broker, demo)
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)


def main() -> None:
    os.umask(0o077)  # the home, the store, run folders and models: readable by their owner only
    register_commands()
    cli(prog_name="driftloop")
