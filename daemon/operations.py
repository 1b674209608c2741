"""The operator's registry actions, one function for both paths: asked of the running daemon over the admin
socket, or run in this process on the store file when no daemon holds it. Results are plain JSON either way."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from daemon.admin import ask_daemon
from daemon.errors import DriftloopError
from daemon.settings import Settings
from drift.settings import DriftSettings
from trainer.results import to_json

if TYPE_CHECKING:
    from registry.registry import Registry

log = logging.getLogger(__name__)
PROMOTING = ("approve", "rollback")


def bentoml_home(settings: Settings) -> Path:
    return settings.registry.bentoml_home or settings.home / "bentoml"


@contextmanager
def open_registry(settings: Settings) -> Iterator[Registry]:
    """The registry over the store file, opened by this process (no daemon may hold it)."""
    import duckdb

    from registry.errors import StoreBusy
    from registry.registry import Registry

    settings.home.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(settings.store_path))
    except duckdb.IOException as exc:
        raise StoreBusy(f"{settings.store_path} is in use by another process (the daemon?): {exc}") from None
    try:
        yield Registry(con, settings.registry, bentoml_home(settings))
    finally:
        con.close()


def call(settings: Settings, operation: str, **arguments: Any) -> Any:
    """Run `operation` in the daemon when one runs, else here; the result as JSON data."""
    answer = ask_daemon(settings.home, "registry", operation=operation, arguments=arguments)
    if answer is None:
        with open_registry(settings) as registry:
            return perform(registry, settings.drift, operation, arguments)
    if not answer["ok"]:
        raise DriftloopError(answer["error"])
    return answer["result"]


def perform(registry: Registry, drift: DriftSettings, operation: str, arguments: dict[str, Any]) -> Any:
    """One registry action; after a promotion the drift monitor starts a fresh reference for the new model."""
    handlers: dict[str, Callable[[], Any]] = {
        "models": lambda: registry.models(arguments.get("stage")),
        "show": lambda: {
            "model": registry.show(arguments["version"]),
            "promotions": registry.promotions(arguments["version"]),
        },
        "approve": lambda: registry.approve(
            arguments["version"], arguments["actor"], arguments.get("reason"), arguments.get("force", False)
        ),
        "reject": lambda: registry.reject(arguments["version"], arguments["actor"], arguments["reason"]),
        "rollback": lambda: registry.rollback(arguments["actor"], arguments.get("to"), arguments.get("reason")),
        "lineage": lambda: registry.lineage(arguments["version"]),
    }
    if operation not in handlers:
        raise DriftloopError(f"unknown registry operation {operation!r}; known: {', '.join(handlers)}")
    result = handlers[operation]()
    if operation in PROMOTING:
        rebaseline_drift(registry, drift)
    return as_json(result)


def rebaseline_drift(registry: Registry, drift: DriftSettings) -> None:
    """A new production model changes the error stream: the monitor cools down and learns a new reference."""
    from drift.store import load_monitor, save_monitor

    monitor = load_monitor(registry.con, drift)
    monitor.rebaseline(cooldown=True)
    save_monitor(registry.con, monitor, [])
    log.info("drift monitor restarts its reference for the new production model")


def as_json(value: Any) -> Any:
    """Dataclasses, lists and dicts as JSON data (times as ISO strings), as the admin socket would carry them."""
    return json.loads(json.dumps(to_json(value), default=str))
