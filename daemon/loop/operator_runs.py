"""`driftloop train` and `driftloop cancel`: an operator starts a run on the current episode's rows, or stops one.

Both are operations. In the running daemon they hold its training slot's lock, so no run starts or ends meanwhile,
and the next training check starts a queued run; with no daemon the request is stored and the next `driftloop run`
starts it.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import duckdb

from daemon.daemon_settings import DaemonSettings
from daemon.errors import RunRefused
from daemon.loop import runs
from daemon.loop.access import Operation, StoreAccess
from daemon.loop.runs import PlannedRun, TrainingRun
from daemon.loop.training import runs_dir
from ingest import history
from registry.records import select_models

log = logging.getLogger(__name__)


def plan_operator_run(
    con: duckdb.DuckDBPyConnection, settings: DaemonSettings, actor: str, reason: str | None
) -> PlannedRun:
    """A run on the rows since the current episode began (the window a drift run of that episode trains on, up to
    now), in that episode; refused while a run is running or queued, or with fewer than `min_new_rows` rows."""
    busy = runs.list_runs(con, status="running") + runs.list_runs(con, status="queued")
    if busy:
        raise RunRefused(
            f"run {busy[0].id} is already {busy[0].status}; wait for it to end, or `driftloop cancel {busy[0].id}` it"
        )
    first = history.current_episode_start(con)
    episode = history.next_episode(con) - 1
    count, last = history.rows_since(con, first)
    if count < settings.min_new_rows or last is None:
        raise RunRefused(
            f"only {count} rows since episode {episode} began at row {first}; a run needs daemon.min_new_rows = "
            f"{settings.min_new_rows} (wait for more feedback, or lower the setting)"
        )
    why = f"requested by {actor}" + (f": {reason}" if reason else "")
    return PlannedRun("operator", None, episode, 1, first, why, last, actor)


def request_run(access: StoreAccess, actor: str, reason: str | None) -> TrainingRun:
    """Queue an operator's run (see `plan_operator_run`); refused while no model is in production."""
    with _training_slot(access):
        if not select_models(access.con, access.settings.registry.task, stage="production"):
            raise RunRefused("no model is in production to continue from; train the first with `driftloop bootstrap`")
        plan = plan_operator_run(access.con, access.settings.daemon, actor, reason)
        record = runs.queue_run(access.con, plan, runs_dir(access.settings))
    log.info("training run %d queued (episode %d from row %d): %s", record.id, record.episode, record.first_row_id,
             record.why)  # fmt: skip
    return record


def cancel_run(access: StoreAccess, run_id: int, actor: str, reason: str | None) -> TrainingRun:
    """Cancel a queued run, or (in the daemon) stop the running one; it ends `cancelled` and is not retried."""
    why = f"cancelled by {actor}" + (f": {reason}" if reason else "")
    if access.training is None:
        return runs.cancel_stored(access.con, run_id, why)
    return access.training.cancel(run_id, why)


def _training_slot(access: StoreAccess) -> AbstractContextManager[Any]:
    return nullcontext() if access.training is None else access.training.lock


def _train(access: StoreAccess, arguments: dict[str, Any]) -> dict[str, Any]:
    record = request_run(access, arguments["actor"], arguments.get("reason"))
    return {**record.as_dict(), "daemon": access.training is not None}


OPERATIONS: dict[str, Operation] = {
    "train": _train,
    "cancel": lambda access, arguments: cancel_run(
        access, int(arguments["run"]), arguments["actor"], arguments.get("reason")
    ),
}
# Operations the daemon performs under its training slot's lock rather than the registry's (a training check takes
# the slot's lock, then the registry's: taking them the other way round could deadlock).
TRAINING_SLOT = tuple(OPERATIONS)
