"""The registry: candidates in, gate decisions recorded, approvals, rejections and rollbacks published.

Every method works on a DuckDB connection it is given (the daemon's, or the CLI's when no daemon runs) and on
the BentoML store; only one process should write.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from common.disk import Deletion
from registry import records, retention
from registry.candidates import CandidateFiles, Lineage
from registry.errors import NotAllowed, StoreError, UnknownVersion
from registry.evaluation import Evaluation, evaluation_to_json, holdout_score
from registry.gate import GateResult, decide
from registry.records import PROMOTING, LineageRecord, ModelRecord, Promotion
from registry.settings import RegistrySettings
from registry.store import ModelStore, StoredModel

log = logging.getLogger(__name__)
AUTO_ACTOR = "driftloop:auto-approve"


class Registry:
    def __init__(self, con: duckdb.DuckDBPyConnection, settings: RegistrySettings, bentoml_home: Path) -> None:
        self.con = con
        self.settings = settings
        self.task = settings.task
        self.store = ModelStore(bentoml_home)
        records.ensure_schema(con)

    # --- reading -------------------------------------------------------------------------------------------------

    def models(self, stage: str | None = None) -> list[ModelRecord]:
        return records.select_models(self.con, self.task, stage=stage)

    def show(self, version: str) -> ModelRecord:
        found = records.select_models(self.con, self.task, version=version)
        if not found:
            known = ", ".join(m.version for m in self.models()[-5:]) or "none yet"
            raise UnknownVersion(
                f"no model {version!r} for task {self.task!r} (latest: {known}); see `driftloop models`"
            )
        return found[0]

    def production(self) -> ModelRecord | None:
        found = self.models("production")
        return found[0] if found else None

    def promotions(self, version: str | None = None) -> list[Promotion]:
        return records.select_promotions(self.con, self.task, involving=version)

    def registered_from(self, run_directory: str) -> ModelRecord | None:
        """The model a training run's candidate was registered as (its lineage's `training_run.directory`)."""
        version = records.version_from_run(self.con, self.task, run_directory)
        return None if version is None else self.show(version)

    def rollback_target(self) -> str | None:
        """The model `driftloop rollback` without `--to` serves again: the one that served before the current one."""
        current = self.production()
        if current is None:
            return None
        previous = [p.from_version for p in self.promotions(current.version)
                    if p.version == current.version and p.action in PROMOTING]  # fmt: skip
        return previous[-1] if previous else None

    def kept_models(self, now: datetime | None = None) -> dict[str, str]:
        """Version -> why gc keeps its files (production, pending, the rollback target, recently retired, recently
        gate-failed)."""
        cutoff = retention.rejected_cutoff(self.settings.gc_rejected_after_days, now or _now())
        return retention.kept_models(
            self.models(), self.promotions(), self.rollback_target(), self.settings.gc_keep_retired, cutoff
        )

    def lineage(self, version: str) -> LineageRecord:
        self.show(version)
        row = records.select_lineage(self.con, self.task, version)
        assert row is not None, "every registered model has a lineage row"
        ranges, snapshot, drift_event, run, report, tag = row
        return LineageRecord(
            version=version,
            kafka_ranges=json.loads(ranges),
            snapshot=json.loads(snapshot),
            drift_event=None if drift_event is None else json.loads(drift_event),
            training_run=json.loads(run),
            report=json.loads(report),
            bentoml_tag=tag,
            promotions=self.promotions(version),
        )

    # --- writing -------------------------------------------------------------------------------------------------

    def reconcile(self) -> list[str]:
        """Make the BentoML store agree with the registry's tables after a crash between publishing and recording:
        a version no row names is removed (its run, still `succeeded`, is submitted again; an approval is made
        again), and the production name's `latest` is pointed back at the recorded production. Returns what it did,
        in words (each also logged as a warning)."""
        done = []
        recorded = {
            self.settings.model_name(): {model.tag for model in self.models()},
            self.settings.production_name(): {p.production_tag for p in self.promotions() if p.production_tag},
        }
        for name, tags in recorded.items():
            for stored in self.store.versions(name):
                if stored.tag not in tags:
                    self.store.remove(name, stored.version)
                    done.append(f"removed {stored.tag} from the BentoML store: no registry row names it")
        serving = self.production_tag()
        production_name = self.settings.production_name()
        if serving is not None and self.store.latest_version(production_name) != serving.split(":", 1)[1]:
            self.store.point_latest(production_name, serving.split(":", 1)[1])
            done.append(f"pointed {production_name}:latest back at {serving}, the recorded production")
        for line in done:
            log.warning("reconcile: %s", line)
        return done

    def submit(
        self,
        files: CandidateFiles,
        candidate: Evaluation,
        production: Evaluation | None,
        lineage: Lineage,
        parent: str | None = None,
    ) -> ModelRecord:
        """Gate a finished candidate, save it as `driftloop-<task>:v<N>` and record it (auto-approve if set)."""
        gate = decide(candidate, production, self.settings)
        self.reconcile()
        seq = self._next_seq()
        version = f"v{seq}"
        name = self.settings.model_name()
        metrics = summarize(candidate, production, self.settings)
        checks = [asdict(check) for check in gate.checks]
        with tempfile.TemporaryDirectory(prefix="driftloop-evidence-") as scratch:
            evidence = _evidence_dir(Path(scratch), files, gate, candidate, production)
            parts = {"model": files.model_dir, "evidence": evidence}
            if files.int8_dir is not None:
                parts["int8"] = files.int8_dir
            if files.adapter_dir is not None:
                parts["adapter"] = files.adapter_dir
            labels = {"task": self.task, "stage": "candidate", "gate": "passed" if gate.passed else "failed"}
            metadata = {"parent": parent or "", "metrics_json": _json(metrics)}  # BentoML metadata takes no None
            stored = self.store.publish(name, version, parts, labels, metadata)
        lineage_values = {
            "kafka_ranges": [dict(r) for r in lineage.kafka_ranges],
            "snapshot": dict(lineage.snapshot),
            "drift_event": None if lineage.drift_event is None else dict(lineage.drift_event),
            "training_run": dict(lineage.training_run),
            "report": dict(lineage.report),
        }
        evidence_hash = records.canonical_hash(
            {"tag": stored.tag, "checks": checks, "metrics": metrics, "lineage": lineage_values}
        )
        stage = "pending" if gate.passed else "gate_failed"
        with _transaction(self.con):
            self.con.execute(
                "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [self.task, version, seq, stored.tag, stage, parent, _now(), gate.passed, _json(checks),
                 _json(metrics), evidence_hash],
            )  # fmt: skip
            self.con.execute(
                "INSERT INTO lineage VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [self.task, version, *(_json(v) if v is not None else None for v in lineage_values.values()),
                 stored.tag],
            )  # fmt: skip
        outcome = "passed" if gate.passed else "failed: " + " ".join(gate.failures())
        log.info("candidate %s: gate %s", stored.tag, outcome)
        if gate.passed and self.settings.auto_approve:
            self.approve(version, AUTO_ACTOR, "registry.auto_approve is on and the gate passed")
        return self.show(version)

    def approve(self, version: str, actor: str, reason: str | None = None, force: bool = False) -> Promotion:
        model = self.show(version)
        if model.stage == "production":
            raise NotAllowed(f"{version} is already in production")
        if model.stage in ("rejected", "retired"):
            hint = "`driftloop rollback --to` brings back a retired model" if model.stage == "retired" else ""
            raise NotAllowed(f"{version} is {model.stage} and cannot be approved{'; ' + hint if hint else ''}")
        if not model.gate_passed and not force:
            failed = " ".join(c["reason"] for c in model.checks if not c["passed"])
            raise NotAllowed(f"{version} failed the gate: {failed} To approve it anyway add --force --reason '...'")
        if force and not (reason and reason.strip()):
            raise NotAllowed(f"approving {version} with --force needs --reason saying why the gate is overruled")
        action = "approve" if actor != AUTO_ACTOR else "auto_approve"
        return self._promote(model, actor, action, reason, forced=force and not model.gate_passed)

    def reject(self, version: str, actor: str, reason: str) -> Promotion:
        if not reason.strip():
            raise NotAllowed("a rejection needs --reason")
        model = self.show(version)
        if model.stage not in ("pending", "gate_failed"):
            hint = "; use `driftloop rollback` to take production back" if model.stage == "production" else ""
            raise NotAllowed(f"{version} is {model.stage}; only pending or gate-failed models can be rejected{hint}")
        current = self.production()
        with _transaction(self.con):
            promotion = self._log(actor, "reject", model, current, current, reason, False, None)
            self._set_stage(version, "rejected")
        log.info("%s rejected by %s: %s", version, actor, reason)
        return promotion

    def rollback(self, actor: str, to: str | None = None, reason: str | None = None) -> Promotion:
        """Publish an earlier production model again; with no `to`, the one that served before the current one."""
        current = self.production()
        if current is None:
            raise NotAllowed("there is no production model to roll back")
        if to is None:
            to = self.rollback_target()
            if to is None:
                raise NotAllowed(f"{current.version} is the first production model; there is nothing to roll back to")
        target = self.show(to)
        if target.stage != "retired":
            raise NotAllowed(f"can only roll back to a model that served before (now retired); {to} is {target.stage}")
        return self._promote(target, actor, "rollback", reason or f"rollback from {current.version}", forced=False)

    def gc_plan(self, now: datetime | None = None) -> list[Deletion]:
        """The store versions gc would delete now (the `registry.gc_*` settings), each with why and its size."""
        return retention.plan(self, now or _now())

    def gc(self, deletions: Sequence[Deletion], actor: str) -> tuple[list[Deletion], list[str]]:
        """Delete a `gc_plan`'s store versions; returns what was deleted and why each failure failed."""
        return retention.delete(self, deletions, actor)

    def record_gc(self, version: str, actor: str, note: str) -> Promotion:
        """A `gc` row of the promotions log: the files of `version` named in `note` were deleted."""
        with _transaction(self.con):
            return self._log(actor, retention.GC_ACTION, self.show(version), None, None, note, False, None)

    # --- internals -----------------------------------------------------------------------------------------------

    def _promote(self, model: ModelRecord, actor: str, action: str, reason: str | None, forced: bool) -> Promotion:
        self.reconcile()  # a crashed promotion's copy holds the version this one will take
        current = self.production()
        source = self._stored(model)
        parts = {child.name: child for child in source.path.iterdir() if child.is_dir()}
        with _transaction(self.con):
            promotion_id = self._next_promotion_id()
            production_version = f"{model.version}-p{promotion_id}"
            metadata = {"source": model.tag, "version": model.version, "promotion": promotion_id, "action": action,
                        "actor": actor, "evidence_hash": model.evidence_hash}  # fmt: skip
            labels = {"task": self.task, "stage": "production", "source_version": model.version}
            name = self.settings.production_name()
            stored = self.store.publish(name, production_version, parts, labels, metadata, make_latest=False)
            promotion = self._log(actor, action, model, current, model, reason, forced, stored.tag, promotion_id)
            if current is not None:
                self._set_stage(current.version, "retired")
            self._set_stage(model.version, "production")
        # Only what the registry recorded is served: a failed commit leaves `latest` (and the service) where it was,
        # and the copy it published unrecorded is removed by the next reconcile.
        self.store.point_latest(name, production_version)
        log.info("%s: %s now serves as %s (%s by %s)", action, model.version, stored.tag, reason or "-", actor)
        return promotion

    def _stored(self, model: ModelRecord) -> StoredModel:
        """The model's candidate in the store; when gc deleted it, a NotAllowed that says so."""
        try:
            return self.store.get(model.tag)
        except StoreError:
            deleted = retention.deleted_by_gc(self.promotions(model.version), model.tag)
            if deleted is None:
                raise
            why = (deleted.reason or "").split("): ", 1)[-1]
            raise NotAllowed(
                f"{model.version} cannot be served again: `driftloop gc` deleted its files ({model.tag}) on "
                f"{deleted.at:%Y-%m-%d}, as it was {why}"
            ) from None

    def _log(
        self,
        actor: str,
        action: str,
        model: ModelRecord,
        before: ModelRecord | None,
        after: ModelRecord | None,
        reason: str | None,
        forced: bool,
        production_tag: str | None,
        promotion_id: int | None = None,
    ) -> Promotion:
        if promotion_id is None:
            promotion_id = self._next_promotion_id()
        values = [promotion_id, self.task, _now(), actor, action, model.version,
                  before.version if before else None, after.version if after else None, reason, forced,
                  records.canonical_hash({"evidence": model.evidence_hash, "action": action, "reason": reason,
                                          "forced": forced}),
                  production_tag]  # fmt: skip
        self.con.execute("INSERT INTO promotions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", values)
        return records.promotion_from_row((values[0], *values[2:]))

    def _set_stage(self, version: str, stage: str) -> None:
        self.con.execute("UPDATE models SET stage = ? WHERE task = ? AND version = ?", [stage, self.task, version])

    def _next_promotion_id(self) -> int:
        row = self.con.execute("SELECT nextval('registry_promotion_ids')").fetchone()
        assert row is not None
        return int(row[0])

    def _next_seq(self) -> int:
        row = self.con.execute("SELECT coalesce(max(seq), 0) FROM models WHERE task = ?", [self.task]).fetchone()
        return int(row[0]) + 1 if row else 1

    def production_tag(self) -> str | None:
        """The store tag the last promotion of the current production model published: what should be served."""
        production = self.production()
        if production is None:
            return None
        for promotion in reversed(self.promotions(production.version)):
            if promotion.action in PROMOTING and promotion.to_version == production.version:
                return promotion.production_tag
        return None


def summarize(candidate: Evaluation, production: Evaluation | None, rules: RegistrySettings) -> dict[str, Any]:
    """Per-episode scores of both models, latency and memory: what `driftloop show` prints."""

    def scores(evaluation: Evaluation) -> dict[str, float]:
        return {str(e): holdout_score(h, rules.gate_metric) for e, h in sorted(evaluation.episodes.items())}

    return {
        "metric": rules.gate_metric,
        "newest_episode": candidate.newest_episode,
        "candidate": scores(candidate),
        "production": None if production is None else scores(production),
        "latency_ms_p99": candidate.latency_ms_p99,
        "peak_memory_mb": candidate.peak_memory_mb,
    }


def _evidence_dir(
    scratch: Path, files: CandidateFiles, gate: GateResult, candidate: Evaluation, production: Evaluation | None
) -> Path:
    folder = scratch / "evidence"
    folder.mkdir()
    (folder / "gate.json").write_text(_json({"passed": gate.passed, "checks": [asdict(c) for c in gate.checks]}))
    evaluations = {"candidate": evaluation_to_json(candidate)}
    if production is not None:
        evaluations["production"] = evaluation_to_json(production)
    (folder / "evaluations.json").write_text(_json(evaluations))
    for path in files.evidence:
        shutil.copy2(path, folder / path.name)
    return folder


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _now() -> datetime:
    return datetime.now(UTC)
