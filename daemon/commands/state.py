"""What every command receives: the global options, resolved into settings on first use."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import click

from daemon.logs import configure_logging
from daemon.settings import Settings, load_settings

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


def pass_state(command: F) -> F:
    """Hand the command the CliState of the `driftloop` group as its first argument."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return command(click.get_current_context().find_object(CliState), *args, **kwargs)

    return wrapper  # type: ignore[return-value]
