"""What gc may delete from the BentoML store, decided from the registry's own tables: the candidates of rejected,
gate-failed and long-retired models, and superseded production versions. Each deletion is recorded as a `gc` row
of the promotions log, so `driftloop show` says when a model's files went."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from common.disk import Deletion, folder_bytes
from registry.errors import StoreError
from registry.records import PROMOTING, ModelRecord, Promotion
from registry.served import read_served

if TYPE_CHECKING:
    from registry.registry import Registry

log = logging.getLogger(__name__)
GC_ACTION = "gc"


def kept_models(
    models: Sequence[ModelRecord],
    promotions: Sequence[Promotion],
    rollback_target: str | None,
    keep_retired: int,
    failed_cutoff: datetime,
) -> dict[str, str]:
    """Version -> why gc keeps that model's files: production, pending, the rollback target, the `keep_retired`
    retired models that served most recently (what `driftloop rollback --to` can still reach), and gate-failed
    models registered after `failed_cutoff` (still approvable with --force)."""
    kept = {model.version: model.stage for model in models if model.stage in ("production", "pending")}
    for model in models:
        if model.stage == "gate_failed" and model.created_at > failed_cutoff:
            kept[model.version] = "gate_failed, still approvable with --force (registry.gc_rejected_after_days)"
    if rollback_target is not None:
        kept.setdefault(rollback_target, "the rollback target")
    began_serving = {p.to_version: p.id for p in promotions if p.action in PROMOTING and p.to_version is not None}
    retired = [model.version for model in models if model.stage == "retired"]
    retired.sort(key=lambda version: began_serving.get(version, 0), reverse=True)
    for version in retired[:keep_retired]:
        kept.setdefault(version, f"one of the {keep_retired} most recently retired (registry.gc_keep_retired)")
    return kept


def plan(registry: Registry, now: datetime) -> list[Deletion]:
    """The candidates and production versions gc deletes now, oldest first; nothing is deleted here."""
    return [*_candidates(registry, now), *_production_versions(registry)]


def _candidates(registry: Registry, now: datetime) -> list[Deletion]:
    settings = registry.settings
    name = settings.model_name()
    stored = {model.version: model for model in registry.store.versions(name)}
    latest = registry.store.latest_version(name)
    kept = registry.kept_models(now)
    cutoff = rejected_cutoff(settings.gc_rejected_after_days, now)
    found = []
    for model in registry.models():
        files = stored.get(model.version)
        if files is None or model.version in kept or model.version == latest:
            continue
        if model.stage == "retired":
            why = f"retired, not among the {settings.gc_keep_retired} most recently served (registry.gc_keep_retired)"
        elif model.stage in ("rejected", "gate_failed") and model.created_at <= cutoff:
            why = (f"{model.stage} and registered over {settings.gc_rejected_after_days:g} days ago "
                   "(registry.gc_rejected_after_days)")  # fmt: skip
        else:
            continue
        found.append(Deletion("candidate", files.tag, why, folder_bytes(files.path), model.version))
    return found


def _production_versions(registry: Registry) -> list[Deletion]:
    """Production versions older than the `gc_keep_retired` newest superseded ones; never the recorded production,
    what `latest` points at, nor what the service last said it serves."""
    settings = registry.settings
    name = settings.production_name()
    stored = {model.version: model for model in registry.store.versions(name)}
    current = registry.production_tag()
    served = read_served(registry.store.home, name)
    protected = {registry.store.latest_version(name), None if current is None else current.split(":", 1)[1],
                 None if served is None else served.version}  # fmt: skip
    published = [(p.production_tag.split(":", 1)[1], p.version) for p in registry.promotions() if p.production_tag]
    superseded = [(version, model) for version, model in reversed(published)
                  if version in stored and version not in protected]  # fmt: skip
    keep = settings.gc_keep_retired
    why = f"a superseded production version older than the {keep} kept (registry.gc_keep_retired)"
    found = [Deletion("production", stored[version].tag, why, folder_bytes(stored[version].path), model)
             for version, model in superseded[keep:]]  # fmt: skip
    return found[::-1]


def rejected_cutoff(days: float, now: datetime) -> datetime:
    """Rejected and gate-failed models registered before this lose their candidate."""
    return now - timedelta(days=days)


def delete(registry: Registry, deletions: Sequence[Deletion], actor: str) -> tuple[list[Deletion], list[str]]:
    """Delete the planned store versions, each recorded as a `gc` row of the promotions log; returns what was
    deleted (with the bytes freed) and, for each one that could not be, why. A failure does not stop the rest."""
    done, failed = [], []
    for item in deletions:
        if item.kind not in ("candidate", "production"):
            raise ValueError(f"the registry deletes BentoML store versions, not {item.kind} items ({item.target})")
        name, version = item.target.split(":", 1)
        try:
            deleted = replace(item, bytes=registry.store.delete(name, version))
        except (StoreError, OSError) as exc:
            failed.append(f"{item.target}: {exc}")
            log.error("gc: could not delete %s: %s", item.target, exc)
            continue
        if item.model is not None:
            registry.record_gc(item.model, actor, deleted_note(deleted))
        log.info("gc: deleted %s (%d bytes): %s", item.target, deleted.bytes, item.reason)
        done.append(deleted)
    return done, failed


def deleted_note(item: Deletion) -> str:
    """The reason of a `gc` row: `deleted <tag> (<bytes> bytes): <why>`."""
    return f"deleted {item.target} ({item.bytes} bytes): {item.reason}"


def deleted_by_gc(promotions: Sequence[Promotion], tag: str) -> Promotion | None:
    """The `gc` row that records deleting `tag`, if one does."""
    for promotion in reversed(promotions):
        if promotion.action == GC_ACTION and (promotion.reason or "").split(" ", 2)[1:2] == [tag]:
            return promotion
    return None
