"""Training runs from the daemon's side: start one in a child process, follow it, cancel it, recover after a crash.

At most one run at a time. The run's record in DuckDB says where it stands; the child process writes the
candidate directory, which appears only when complete.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from daemon.loop import runs
from daemon.loop.runs import PlannedRun, TrainingRun
from daemon.settings import Settings
from drift.store import monitor_name
from ingest import history
from trainer.data import Row, TrainingData, select_rows
from trainer.errors import TrainerError, TrainingCancelled, TrainingFailed
from trainer.process import TrainingProcess, start

log = logging.getLogger(__name__)
Cursor = Callable[[], duckdb.DuckDBPyConnection]
CANCEL_WAIT_S = 20.0  # how long `driftloop cancel` waits for the child to stop (the CLI waits 30 s for an answer)


@dataclass(frozen=True)
class ParentModel:
    """The production model a run continues from: its version and the directory of its adapter (else its model)."""

    version: str
    directory: Path


@dataclass
class ActiveRun:
    record: TrainingRun
    process: TrainingProcess
    last_event: dict[str, Any] = field(default_factory=dict)
    cancelled: str | None = None  # why an operator cancelled it; None while only a shutdown would stop it


def runs_dir(settings: Settings) -> Path:
    return settings.home / "runs"


def launch(
    con: duckdb.DuckDBPyConnection, settings: Settings, plan: PlannedRun, parent: ParentModel | None
) -> tuple[TrainingRun, TrainingProcess] | None:
    """Record the run, select its rows and start the child process; a run that cannot start is recorded as
    failed with the reason, and None is returned."""
    record = runs.open_run(con, plan, parent.version if parent else None, runs_dir(settings))
    out_dir = Path(record.out_dir)
    log.info("training run %d starting (%s, attempt %d): %s", record.id, plan.trigger, plan.attempt, plan.why)
    try:
        window, earlier = split_window(history.training_rows(con, plan.last_row_id), plan.first_row_id)
        data = select_rows(window, earlier, settings.trainer)
        adapter = None
        if parent is not None:
            adapter = out_dir.parent / "parent-adapter"  # a copy: the run never reads the store while it trains
            shutil.copytree(parent.directory, adapter)
        process = start(settings.trainer, data, None, adapter, out_dir)
    except Exception as exc:  # whatever it is, the run ends with the reason instead of staying `running`
        runs.end_run(con, record.id, status="failed", reason=f"the run could not start: {_described(exc)}")
        log.error("training run %d could not start: %s", record.id, _described(exc), exc_info=not _expected(exc))
        return None
    labelled = settings.trainer.task_kind == "classification"
    runs.record_start(con, record.id, process.popen.pid, describe_data(data, len(window), labelled))
    return runs.get_run(con, record.id), process


def follow(
    cursor: Cursor,
    record: TrainingRun,
    process: TrainingProcess,
    on_event: Callable[[dict[str, Any]], None],
    cancelled: Callable[[], str | None] = lambda: None,
) -> str:
    """Wait for the child process and record how it ended; returns the run's final status. A cancelled child ends
    the run `cancelled` when `cancelled()` gives an operator's reason, else `interrupted` (a shutdown)."""
    try:
        process.wait(on_event)
        status, reason = "succeeded", None
    except TrainingCancelled:
        status, reason = "cancelled", cancelled()
        if reason is None:
            retried = runs.retried_when_interrupted(record)
            again = "it is tried again on the next start" if retried else "it is not retried"
            status, reason = "interrupted", f"the daemon shut down during the run; {again}"
    except TrainingFailed as exc:
        status, reason = "failed", str(exc)
    except Exception as exc:  # following the child failed: the child is stopped and the run ends with why
        log.exception("following training run %d failed", record.id)
        process.cancel()
        status, reason = "failed", f"following the run failed: {_described(exc)}"
    with cursor() as con:
        runs.end_run(con, record.id, status=status, reason=reason)
    log_method = log.info if status == "succeeded" else log.error
    log_method("training run %d %s%s", record.id, status, f": {reason}" if reason else "")
    return status


def recover(con: duckdb.DuckDBPyConnection) -> list[TrainingRun]:
    """Runs a previous daemon left `running`: a complete candidate is `succeeded` (the gate picks it up), any other
    run is `aborted` (and retried by policy) after its orphaned training process, if still alive, is killed."""
    found = runs.list_runs(con, status="running")
    for record in found:
        if (Path(record.out_dir) / "candidate.json").is_file():
            runs.end_run(con, record.id, status="succeeded", reason="finished while the daemon was down")
            log.warning("training run %d finished while the daemon was down; its candidate goes to the gate", record.id)
            continue
        killed = _kill_orphan(record)
        reason = "the daemon stopped during the run"
        if killed:
            reason += f"; its training process {record.pid}, still running, was killed"
        runs.end_run(con, record.id, status="aborted", reason=reason)
        log.warning("training run %d aborted: %s", record.id, reason)
    return found


def _expected(exc: Exception) -> bool:
    return isinstance(exc, TrainerError | OSError)


def _described(exc: Exception) -> str:
    return str(exc) if _expected(exc) else f"{type(exc).__name__}: {exc}"


def split_window(rows: list[history.StoredRow], first_row_id: int) -> tuple[list[Row], list[Row]]:
    """The run's new window (rows from `first_row_id` on) and the history before it, as the trainer's rows."""
    window: list[Row] = []
    earlier: list[Row] = []
    for row in rows:
        (window if row.row_id >= first_row_id else earlier).append(
            Row(row.id, row.text, row.label, row.episode, row.split, row.kind, row.prediction)
        )
    return window, earlier


def describe_data(data: TrainingData, window_rows: int, labelled: bool = True) -> dict[str, Any]:
    """The run's rows in counts; with `labelled`, its labels too (a generative model's labels are its answers)."""
    described = {
        "window_rows": window_rows,
        "train_rows": len(data.train),
        "validation_rows": len(data.validation),
        "holdout_rows": {str(e): len(rows) for e, rows in data.holdout_by_episode().items()},
        "new_rows": data.new_rows,
        "replay_rows": data.replay_rows,
        "duplicates_dropped": data.duplicates_dropped,
        "feedback_mix": None if data.mix is None else asdict(data.mix),
    }
    return {**described, "labels": list(data.labels)} if labelled else described


def _kill_orphan(record: TrainingRun) -> bool:
    """Kill the recorded training process when it still runs this run's job (a pid can be reused)."""
    if record.pid is None:
        return False
    try:
        command = Path(f"/proc/{record.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    if b"trainer.worker" not in command or not any(record.out_dir.encode() in part for part in command):
        return False
    os.kill(record.pid, signal.SIGKILL)
    return True


class TrainingSupervisor:
    """The daemon's one training slot: `check()` (scheduled) starts a due run, an operator's queued one first;
    `cancel()` stops one for an operator; `stop()` interrupts it at shutdown."""

    def __init__(self, settings: Settings, cursor: Cursor, production: Callable[[], ParentModel | None]) -> None:
        self.settings = settings
        self.monitor = monitor_name(settings.drift)  # the watched stream's, whose events call for runs
        self.cursor = cursor
        self.production = production
        self.active: ActiveRun | None = None
        self._thread: threading.Thread | None = None
        self.lock = threading.Lock()  # held while a run starts, ends or is queued or cancelled; before the registry's
        self._warned_no_production = False

    def check(self) -> None:
        with self.lock:
            if self.active is not None:
                return
            with self.cursor() as con:
                plan = runs.next_queued_run(con) or runs.next_drift_run(con, self.settings.daemon, self.monitor)
                if plan is None:
                    return
                parent = self.production()
                if parent is None:
                    if not self._warned_no_production:
                        log.warning("%s calls for a run, but no model is in production; `driftloop bootstrap` first",
                                    plan.trigger)  # fmt: skip
                        self._warned_no_production = True
                    return
                launched = launch(con, self.settings, plan, parent)
            if launched is not None:
                self.active = ActiveRun(*launched)
                self._thread = threading.Thread(target=self._follow, name="training-run", daemon=True)
                self._thread.start()

    def _follow(self) -> None:
        active = self.active
        assert active is not None
        try:
            follow(self.cursor, active.record, active.process, self._on_event, lambda: active.cancelled)
        finally:
            with self.lock:
                self.active = None

    def _on_event(self, event: dict[str, Any]) -> None:
        if self.active is not None:
            self.active.last_event = event

    def status(self) -> dict[str, Any] | None:
        active = self.active
        if active is None:
            return None
        return {"run": active.record.id, "pid": active.process.popen.pid, "progress": active.last_event}

    def cancel(self, run_id: int, why: str) -> TrainingRun:
        """An operator's cancel: a queued run ends `cancelled` at once; the active run's child is stopped, and the
        run ends `cancelled` with `why` (never retried), waited for up to CANCEL_WAIT_S; an ended run is refused."""
        with self.lock:
            active, thread = self.active, self._thread
            if active is None or thread is None or active.record.id != run_id:
                with self.cursor() as con:
                    return runs.cancel_stored(con, run_id, why)
            log.info("training run %d: cancelling (pid %d): %s", run_id, active.process.popen.pid, why)
            active.cancelled = why
            active.process.cancel()
        thread.join(CANCEL_WAIT_S)
        with self.cursor() as con:
            return runs.get_run(con, run_id)

    def stop(self) -> None:
        """Cancel the running child (it is recorded `interrupted`) and wait for it to end."""
        active, thread = self.active, self._thread
        if active is None or thread is None:
            return
        log.info("shutdown: stopping training run %d (pid %d)", active.record.id, active.process.popen.pid)
        active.process.cancel()
        thread.join()
