"""README documents every setting and every command (a test, so the docs cannot fall behind)."""

from __future__ import annotations

from pathlib import Path

import click

from daemon.cli import cli, register_commands
from daemon.settings import Settings
from tests.daemon.test_settings import leaf_fields

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def command_paths(group: click.Group, prefix: str = "driftloop") -> list[str]:
    paths: list[str] = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        paths += command_paths(command, path) if isinstance(command, click.Group) else [path]
    return paths


def test_every_setting_is_in_the_readme() -> None:
    assert [key for key, _ in leaf_fields(Settings) if f"`{key}`" not in README] == []


def test_every_command_is_in_the_readme() -> None:
    register_commands()
    assert [path for path in command_paths(cli) if f"`{path}" not in README] == []
