"""What the CLI asks of the store, one function per operation for both paths: asked of the running daemon over
the admin socket, or run in this process on the store file when no daemon holds it. Results are JSON data either
way, so a command prints the same whichever path answered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from daemon.errors import DaemonError
from daemon.loop import operator_runs, registry_actions
from daemon.loop.access import Operation, StoreAccess
from daemon.loop.admin import ask_daemon
from daemon.loop.jobs import check_drift
from daemon.loop.retention import collect_garbage
from daemon.loop.store import open_store
from daemon.reports.backtest import backtest_stored
from daemon.reports.chart import write_chart
from daemon.reports.status import collect_status, drift_status
from daemon.settings import Settings
from ingest.prediction_log import audit_sample
from ingest.summary import recent_rejections, store_summary
from trainer.results import to_json

OPERATIONS: dict[str, Operation] = {
    **registry_actions.OPERATIONS,
    **operator_runs.OPERATIONS,
    "status": lambda access, _: collect_status(access.con, access.settings),
    "drift_status": lambda access, _: drift_status(access.con, access.settings.drift),
    "drift_check": lambda access, _: check_drift(access.con, access.settings.drift).describe(),
    "backtest": lambda access, arguments: backtest_stored(access.con, access.settings.drift, **arguments),
    "feedback_stats": lambda access, _: store_summary(
        access.con, access.settings.kafka.topic, access.settings.kafka.predictions_topic
    ),
    "rejections": lambda access, arguments: recent_rejections(access.con, arguments["limit"]),
    "audit_export": lambda access, arguments: audit_sample(
        access.con, access.settings.audit.sample_rate, arguments["limit"]
    ),
    "chart": lambda access, arguments: write_chart(access, Path(arguments["path"]), arguments["window"]),
    "gc": lambda access, arguments: collect_garbage(access, arguments["dry_run"], arguments["actor"]),
}


# Operations that replay or draw the whole stored stream (minutes on a store of millions of rows), or delete
# many models and run folders.
LONG = ("backtest", "chart", "gc")
LONG_TIMEOUT_S = 600.0


def call(settings: Settings, operation: str, **arguments: Any) -> Any:
    """Run `operation` in the daemon when one runs, else here on the store file; the result as JSON data."""
    timeout_s = LONG_TIMEOUT_S if operation in LONG else 30.0
    answer = ask_daemon(settings.home, "operation", timeout_s, operation=operation, arguments=arguments)
    if answer is None:
        with open_store(settings) as store:
            return perform(StoreAccess(store.con, settings), operation, arguments)
    if not answer["ok"]:
        raise DaemonError(answer["error"])
    return answer["result"]


def perform(access: StoreAccess, operation: str, arguments: dict[str, Any]) -> Any:
    if operation not in OPERATIONS:
        raise DaemonError(f"unknown operation {operation!r}; known: {', '.join(sorted(OPERATIONS))}")
    return as_json(OPERATIONS[operation](access, arguments))


def as_json(value: Any) -> Any:
    """Dataclasses, lists and dicts as JSON data (times as ISO strings), as the admin socket would carry them."""
    return json.loads(json.dumps(to_json(value), default=str))
