"""`driftloop config show`: the resolved settings, secrets masked."""

from __future__ import annotations

import json
from pathlib import Path

import click

from daemon.commands.state import CliState, pass_state
from daemon.settings import flatten


@click.group("config")
def config_group() -> None:
    """Inspect the settings."""


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object of dotted keys.")
@pass_state
def config_show(state: CliState, as_json: bool) -> None:
    """Print every setting after the file, the environment and the flags are applied."""
    rows = list(flatten(state.settings))
    if as_json:
        click.echo(json.dumps({key: _plain(value) for key, value, _ in rows}, indent=2))
        return
    width = max(len(key) for key, _, _ in rows)
    for key, value, description in rows:
        click.echo(f"{key:<{width}}  {_plain(value)!s:<24}  {description}")


def _plain(value: object) -> object:
    return str(value) if isinstance(value, Path) else value


COMMANDS = [config_group]
