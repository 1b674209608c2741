"""The operator's registry actions as operations; after a promotion the drift monitor starts a fresh reference."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import duckdb

from daemon.loop.access import Operation, StoreAccess
from daemon.loop.runs import bootstrap_end
from drift.settings import DriftSettings
from drift.store import load_monitor, monitor_name, save_monitor

if TYPE_CHECKING:
    from registry.records import Promotion

log = logging.getLogger(__name__)


def rebaseline_drift(con: duckdb.DuckDBPyConnection, drift: DriftSettings) -> None:
    """A new production model changes the error stream: the monitor cools down and learns a new reference. The
    first production model's monitor, never fed yet, starts after the bootstrap set instead (its reference is live
    traffic, not the training set; a cooldown counted from the first stored row would swallow a short stream)."""
    name = monitor_name(drift)
    monitor = load_monitor(con, drift, name)
    start = bootstrap_end(con)
    if monitor.last_row_id is None and drift.stream == "served":
        monitor.rebaseline(cooldown=False)
        log.info("drift monitor watches served traffic from the first prediction")
    elif monitor.last_row_id is None and start is not None:
        monitor.start_after(start)
        log.info("drift monitor starts after the bootstrap set (row %d)", start)
    else:
        monitor.rebaseline(cooldown=True)
        log.info("drift monitor restarts its reference for the new production model")
    save_monitor(con, monitor, [], name)


def _show(access: StoreAccess, arguments: dict[str, Any]) -> dict[str, Any]:
    registry = access.registry()
    return {"model": registry.show(arguments["version"]), "promotions": registry.promotions(arguments["version"])}


def _approve(access: StoreAccess, arguments: dict[str, Any]) -> Promotion:
    registry = access.registry()
    promotion = registry.approve(
        arguments["version"], arguments["actor"], arguments.get("reason"), arguments.get("force", False)
    )
    rebaseline_drift(access.con, access.settings.drift)
    return promotion


def _rollback(access: StoreAccess, arguments: dict[str, Any]) -> Promotion:
    registry = access.registry()
    promotion = registry.rollback(arguments["actor"], arguments.get("to"), arguments.get("reason"))
    rebaseline_drift(access.con, access.settings.drift)
    return promotion


OPERATIONS: dict[str, Operation] = {
    "models": lambda access, arguments: access.registry().models(arguments.get("stage")),
    "show": _show,
    "approve": _approve,
    "reject": lambda access, arguments: access.registry().reject(
        arguments["version"], arguments["actor"], arguments["reason"]
    ),
    "rollback": _rollback,
    "lineage": lambda access, arguments: access.registry().lineage(arguments["version"]),
}
