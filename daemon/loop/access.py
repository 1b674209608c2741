"""What an operation on the store is given: a connection and the settings, as the daemon or the CLI holds them, and
in the daemon its training slot."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import duckdb

from daemon.loop.store import bentoml_home
from daemon.settings import Settings

if TYPE_CHECKING:
    from daemon.loop.training import TrainingSupervisor
    from registry.registry import Registry


@dataclass(frozen=True)
class StoreAccess:
    con: duckdb.DuckDBPyConnection
    settings: Settings
    training: TrainingSupervisor | None = None  # the running daemon's; None when the CLI holds the store

    def registry(self) -> Registry:
        from registry.registry import Registry

        return Registry(self.con, self.settings.registry, bentoml_home(self.settings))


Operation = Callable[[StoreAccess, dict[str, Any]], Any]
"""One operation: the access and the command's arguments (JSON data) in, a result `as_json` can carry out."""
