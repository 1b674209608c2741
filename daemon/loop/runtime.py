"""`driftloop run`: ingest in the main thread, the periodic jobs on APScheduler, the admin API, metrics, and an
ordered shutdown. Every job decides from the store, so a restart or a missed run is harmless."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler

from daemon.loop.access import StoreAccess
from daemon.loop.admin import SOCKET_NAME, AdminServer
from daemon.loop.jobs import check_drift
from daemon.loop.metrics import serve_metrics
from daemon.loop.operations import as_json, perform
from daemon.loop.operator_runs import TRAINING_SLOT
from daemon.loop.retention import GC_ACTOR, collect_garbage
from daemon.loop.store import open_store
from daemon.loop.submission import submit_finished
from daemon.loop.training import ParentModel, TrainingSupervisor, recover
from daemon.reports.status import collect_status
from daemon.settings import Settings
from ingest.consumer import FeedbackIngestor
from ingest.errors import ReaderLost
from ingest.prediction_log import forget_old_predictions

if TYPE_CHECKING:
    from registry.registry import Registry

log = logging.getLogger(__name__)


class Daemon:
    """One process that owns the store: it ingests, runs the scheduled jobs and answers the CLI."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.started = time.time()
        self.store = open_store(settings, wait_s=30.0)
        recover(self.store.con)
        self.ingestor = FeedbackIngestor(settings.kafka, settings.ingest, self.store, stop)
        self.scheduler = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True})
        self.training = TrainingSupervisor(settings, self.store.con.cursor, self._production_parent)
        self.registry_lock = threading.Lock()  # one registry writer at a time: the gate job or an operator
        self.admin = AdminServer(settings.home / SOCKET_NAME, {"operation": self.operate})
        self._stop_metrics: Callable[[], None] | None = None
        self.ingest_halted: str | None = None  # why ingest stopped while the daemon runs on
        self.reader_restarts = 0

    def run(self) -> None:
        daemon = self.settings.daemon
        self.scheduler.add_job(self.drift_job, "interval", seconds=daemon.drift_check_interval_s, id="drift-check")
        self.scheduler.add_job(self.training.check, "interval", seconds=daemon.training_check_interval_s, id="training")
        self.scheduler.add_job(self.gate_job, "interval", seconds=daemon.training_check_interval_s, id="gate")
        self.scheduler.add_job(
            self.housekeeping_job, "interval", seconds=daemon.housekeeping_interval_s, id="housekeeping"
        )
        self.reconcile_store()
        if daemon.metrics_port:
            self._stop_metrics = serve_metrics(daemon.metrics_host, daemon.metrics_port, self.status)
        self.scheduler.start()
        self.admin.start()
        log.info("daemon running (pid %d, home %s)", os.getpid(), self.settings.home)
        try:
            self.ingest()
        finally:
            self.shutdown()

    def ingest(self) -> None:
        """Ingest until stopped. A Kafka reader process that dies is replaced, after a wait that doubles while
        it keeps dying soon after its start. Ingest that cannot go on halts alone: the reason goes to `status` and
        the `driftloop_ingest_halted` metric, and training, the gate, the admin API and metrics run on until stopped."""
        retry = self.settings.ingest
        wait = retry.retry_initial_s
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                self.ingestor.run()
                return
            except ReaderLost as exc:
                self.reader_restarts += 1
                lived_s = time.monotonic() - started
                wait = retry.retry_initial_s if lived_s > retry.retry_max_s else min(wait * 2, retry.retry_max_s)
                log.warning("%s; starting a new reader in %.1f s", exc, wait)
                self.stop.wait(wait)
            except Exception as exc:
                self.ingest_halted = f"{type(exc).__name__}: {exc}"
                log.exception("ingest halted; the rest of the daemon runs on (fix the cause, then restart the daemon)")
                self.stop.wait()

    def drift_job(self) -> None:
        with self.registry_lock, self.store.con.cursor() as con:  # an approval resets the monitor: one at a time
            check_drift(con, self.settings.drift)

    def reconcile_store(self) -> None:
        """Undo what a crash between publishing into the BentoML store and recording it left behind."""
        from registry.errors import RegistryError

        try:
            with self._registry() as registry:
                registry.reconcile()
        except (RegistryError, OSError):
            log.exception("the BentoML store could not be reconciled with the registry; the daemon goes on")

    def gate_job(self) -> None:
        with self._registry() as registry:
            submit_finished(registry.con, registry, self.settings.trainer.latency_samples, self.settings.drift)

    def housekeeping_job(self) -> None:
        """Drop the prediction log's old texts and rows, fold the write-ahead log into the file, so a restart replays
        little; then delete what retention lets go of (`driftloop gc`, under the registry lock). A failing step is
        logged and tried again next time."""
        try:
            with self.store.con.cursor() as con:
                forgotten = forget_old_predictions(con, self.settings.ingest, datetime.now(UTC))
            log.info("housekeeping: prediction log retention %s", forgotten)
        except Exception:
            log.exception("housekeeping: prediction log retention failed; tried again at the next housekeeping")
        with self.store.con.cursor() as con:
            con.execute("CHECKPOINT")
        if not self.settings.daemon.gc_in_housekeeping:
            return
        try:
            with self.registry_lock, self.store.con.cursor() as con:
                collect_garbage(StoreAccess(con, self.settings), dry_run=False, actor=GC_ACTOR)
        except Exception:
            log.exception("housekeeping: gc failed; the daemon goes on and tries again at the next housekeeping")

    def operate(self, request: dict[str, Any]) -> Any:
        """An operation the CLI asks for, on a cursor of the daemon's store (`status` with the live figures; `train`
        and `cancel` with the training slot, under its own lock)."""
        operation, arguments = request["operation"], request.get("arguments", {})
        if operation == "status":
            return as_json(self.status())
        if operation in TRAINING_SLOT:
            with self.store.con.cursor() as con:
                return perform(StoreAccess(con, self.settings, self.training), operation, arguments)
        with self.registry_lock, self.store.con.cursor() as con:
            return perform(StoreAccess(con, self.settings), operation, arguments)

    def status(self) -> dict[str, Any]:
        with self.store.con.cursor() as con:
            status = collect_status(con, self.settings)
        progress = self.ingestor.progress
        status["training"]["active"] = self.training.status()
        status["daemon"] = {
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "ingested_since_start": progress.stored,
            "rejected_since_start": progress.rejected,
            "records_per_s": round(progress.records_per_s, 1),
            "lag": progress.lag,
            "ingest_halted": self.ingest_halted,
            "reader_restarts": self.reader_restarts,
            "jobs": [
                {"id": job.id, "next_run": None if job.next_run_time is None else job.next_run_time.isoformat()}
                for job in self.scheduler.get_jobs()
            ],
        }
        return status

    def shutdown(self) -> None:
        log.info("shutdown: ingest stopped; waiting for scheduled jobs to finish")
        self.scheduler.shutdown(wait=True)
        self.training.stop()
        log.info("shutdown: closing the admin API")
        self.admin.stop()
        if self._stop_metrics is not None:
            self._stop_metrics()
        log.info("shutdown: closing the store")
        self.store.close()
        log.info("shutdown complete")

    def _production_parent(self) -> ParentModel | None:
        """The production model the next run continues from (its adapter, else its model)."""
        with self._registry() as registry:
            production = registry.production()
            if production is None:
                return None
            stored = registry.store.get(production.tag).path
        adapter = stored / "adapter"
        return ParentModel(production.version, adapter if adapter.is_dir() else stored / "model")

    @contextmanager
    def _registry(self) -> Iterator[Registry]:
        with self.registry_lock, self.store.con.cursor() as con:
            yield StoreAccess(con, self.settings).registry()
