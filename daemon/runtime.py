"""`driftloop run`: ingest in the main thread, periodic jobs on APScheduler, the admin API, ordered shutdown."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler

from daemon.admin import SOCKET_NAME, AdminServer
from daemon.jobs import check_drift
from daemon.settings import Settings
from daemon.status import collect_status
from drift.store import ensure_schema
from ingest.consumer import FeedbackIngestor
from ingest.store import FeedbackStore

log = logging.getLogger(__name__)


class Daemon:
    """One process that owns the store: it ingests, runs the scheduled jobs and answers the CLI."""

    def __init__(self, settings: Settings, stop: threading.Event) -> None:
        self.settings = settings
        self.stop = stop
        self.started = time.time()
        self.store = FeedbackStore(settings.store_path, settings.ingest)
        ensure_schema(self.store.con)
        self.ingestor = FeedbackIngestor(settings.kafka, settings.ingest, self.store, stop)
        self.scheduler = BackgroundScheduler(job_defaults={"max_instances": 1, "coalesce": True})
        self.admin = AdminServer(settings.home / SOCKET_NAME, {"status": self.status})

    def run(self) -> None:
        self.scheduler.add_job(
            self.drift_job, "interval", seconds=self.settings.daemon.drift_check_interval_s, id="drift-check"
        )
        self.scheduler.start()
        self.admin.start()
        log.info("daemon running (pid %d, home %s)", os.getpid(), self.settings.home)
        try:
            self.ingestor.run()
        finally:
            self.shutdown()

    def drift_job(self) -> None:
        con = self.store.con.cursor()
        try:
            check_drift(con, self.settings.drift)
        finally:
            con.close()

    def status(self, request: dict[str, Any]) -> dict[str, Any]:
        con = self.store.con.cursor()
        try:
            status = collect_status(con, self.settings)
        finally:
            con.close()
        progress = self.ingestor.progress
        status["daemon"] = {
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 1),
            "ingested_since_start": progress.stored,
            "rejected_since_start": progress.rejected,
            "records_per_s": round(progress.records_per_s, 1),
            "lag": progress.lag,
            "jobs": [
                {"id": job.id, "next_run": None if job.next_run_time is None else job.next_run_time.isoformat()}
                for job in self.scheduler.get_jobs()
            ],
        }
        return status

    def shutdown(self) -> None:
        log.info("shutdown: ingest stopped; waiting for scheduled jobs to finish")
        self.scheduler.shutdown(wait=True)
        log.info("shutdown: closing the admin API")
        self.admin.stop()
        log.info("shutdown: closing the store")
        self.store.close()
        log.info("shutdown complete")
