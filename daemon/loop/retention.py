"""`driftloop gc`: one plan of what retention deletes (the registry's old BentoML store versions, the daemon's
training run folders), listed by a dry run and carried out by a real one, from the CLI or the daemon's
housekeeping. The stored feedback is never touched."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from common.disk import Deletion, folder_bytes
from daemon.loop import runs
from daemon.loop.access import StoreAccess
from daemon.loop.training import runs_dir
from daemon.settings import Settings

log = logging.getLogger(__name__)
GC_ACTOR = "driftloop:gc"


@dataclass(frozen=True)
class GcPlan:
    """What gc deletes now, each item with why and its size."""

    deletions: tuple[Deletion, ...]

    @property
    def total_bytes(self) -> int:
        return sum(item.bytes for item in self.deletions)


@dataclass(frozen=True)
class GcResult:
    """What gc deleted (in a dry run: what it would delete), the bytes in all, and each failure with why."""

    dry_run: bool
    deleted: tuple[Deletion, ...]
    total_bytes: int
    failed: tuple[str, ...] = ()


def plan_gc(access: StoreAccess, now: datetime | None = None) -> GcPlan:
    """The registry's store versions and the run folders retention lets go of now; nothing is deleted here."""
    now = now or datetime.now(UTC)
    registry = access.registry()
    store = registry.gc_plan(now)
    folders = run_folders(access.con, access.settings, registry.kept_models(now), now)
    return GcPlan((*store, *folders))


def run_folders(
    con: duckdb.DuckDBPyConnection, settings: Settings, kept: Mapping[str, str], now: datetime
) -> list[Deletion]:
    """Folders of runs that ended over `daemon.gc_runs_after_days` ago, oldest first, except those of a model whose
    files the registry keeps (production, pending, the rollback target, recently retired or gate-failed)."""
    days = settings.daemon.gc_runs_after_days
    cutoff = now - timedelta(days=days)
    root = runs_dir(settings).resolve()
    found = []
    for record in reversed(runs.list_runs(con)):
        if record.status not in runs.ENDED or record.ended_at is None or record.ended_at > cutoff:
            continue
        if record.candidate_version is not None and record.candidate_version in kept:
            continue
        folder = Path(record.out_dir).parent
        if folder.name != f"run-{record.id}" or folder.resolve().parent != root or not folder.is_dir():
            continue  # never anything outside `<home>/runs`, nor a folder already gone
        model = f", model {record.candidate_version}" if record.candidate_version else ""
        why = f"run {record.id} ended {record.status}{model}, over {days:g} days ago (daemon.gc_runs_after_days)"
        found.append(Deletion("run", str(folder), why, folder_bytes(folder), record.candidate_version))
    return found


def collect_garbage(access: StoreAccess, dry_run: bool, actor: str, now: datetime | None = None) -> GcResult:
    """Plan, then (unless `dry_run`) delete: store versions by the registry, run folders here. A failure is logged
    and reported, and the rest is still deleted."""
    plan = plan_gc(access, now)
    if dry_run:
        return GcResult(True, plan.deletions, plan.total_bytes)
    stored = [item for item in plan.deletions if item.kind != "run"]
    deleted, failed = access.registry().gc(stored, actor) if stored else ([], [])
    for item in plan.deletions:
        if item.kind != "run":
            continue
        try:
            shutil.rmtree(item.target)
        except OSError as exc:
            failed.append(f"{item.target}: {exc}")
            log.error("gc: could not delete %s: %s", item.target, exc)
            continue
        log.info("gc: deleted %s (%d bytes): %s", item.target, item.bytes, item.reason)
        deleted.append(item)
    result = GcResult(False, tuple(deleted), sum(item.bytes for item in deleted), tuple(failed))
    if deleted or failed:
        log.info("gc: deleted %d items, %d bytes; %d failed", len(deleted), result.total_bytes, len(failed))
    return result
