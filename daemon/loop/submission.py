"""The gate job: a finished run's candidate against production on every episode's holdout, into the registry
with its lineage, from the Kafka offsets of its data to the evaluation report."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from daemon.loop import runs
from daemon.loop.registry_actions import rebaseline_drift
from daemon.loop.runs import TrainingRun
from drift.settings import DriftSettings
from drift.store import event_record, monitor_name
from ingest import history
from registry.settings import RegistrySettings
from trainer.errors import TrainerError
from trainer.generation_cost import measure_generation_cost
from trainer.job import JOB_FILE, PROGRESS_FILE, ROWS_FILE, read_job, run_dir_for
from trainer.results import (
    CANDIDATE_FILE,
    PREDICTIONS_FILE,
    Candidate,
    EvaluationReport,
    TextScores,
    load_candidate,
)
from trainer.serving_cost import ServedAs, ServingCost, measure_serving

if TYPE_CHECKING:
    from registry.candidates import Lineage
    from registry.evaluation import Evaluation
    from registry.records import ModelRecord
    from registry.registry import Registry

log = logging.getLogger(__name__)
COST_TEXTS = 2_000  # holdout texts the serving cost is measured on (the memory of a batch is what counts)
COST_NEW_TOKENS = 32  # a generative model is timed on answers of this many tokens (the guide's budget is per answer)


def submit_finished(
    con: duckdb.DuckDBPyConnection, registry: Registry, latency_samples: int, drift: DriftSettings
) -> list[ModelRecord]:
    """Gate and register every run that finished training; each run ends `submitted` (or `failed`, with why)."""
    submitted = []
    for record in reversed(runs.list_runs(con, status="succeeded")):
        model = submit_run(con, registry, record, latency_samples, drift)
        if model is not None:
            submitted.append(model)
    return submitted


def submit_run(
    con: duckdb.DuckDBPyConnection, registry: Registry, record: TrainingRun, latency_samples: int, drift: DriftSettings
) -> ModelRecord | None:
    """Gate a finished run's candidate and register it; the run ends `submitted`, or `failed` with why."""
    from registry.candidates import CandidateFiles
    from registry.errors import RegistryError

    production = registry.production()
    current = production.version if production else None
    if current != record.parent_version:
        again = "it is trained again" if runs.retried_when_interrupted(record) else "it is not retried"
        reason = f"production changed from {record.parent_version} to {current} during the run; {again}"
        runs.end_run(con, record.id, status="interrupted", reason=reason)
        log.warning("training run %d: %s", record.id, reason)
        return None
    registered = registry.registered_from(str(Path(record.out_dir).parent))
    if registered is not None:  # registered, then the daemon stopped before the run was marked: not twice
        log.warning("training run %d was registered as %s before a restart; marked submitted", record.id,
                    registered.version)  # fmt: skip
        runs.end_run(con, record.id, status="submitted", candidate_version=registered.version)
        return registered
    try:
        candidate = load_candidate(Path(record.out_dir))
        run_dir = run_dir_for(candidate.path)
        cost = serving_cost(candidate, registry.settings, latency_samples)
        candidate_eval, production_eval = evaluations(candidate, cost, production)
        files = CandidateFiles(
            model_dir=candidate.model_dir,
            int8_dir=_existing(candidate.path / "int8"),
            adapter_dir=candidate.adapter_dir,
            evidence=[
                candidate.path / CANDIDATE_FILE,
                candidate.path / PREDICTIONS_FILE,
                run_dir / JOB_FILE,
                run_dir / PROGRESS_FILE,
            ],  # fmt: skip
        )
        lineage = build_lineage(con, record, candidate, cost, monitor_name(drift))
        model = registry.submit(files, candidate_eval, production_eval, lineage, parent=current)
    except (RegistryError, TrainerError, OSError, ValueError, KeyError) as exc:
        runs.end_run(con, record.id, status="failed", reason=f"the candidate could not be gated or stored: {exc}")
        log.exception("training run %d: the candidate could not be gated or stored", record.id)
        return None
    runs.end_run(con, record.id, status="submitted", candidate_version=model.version)
    if model.stage == "production":  # registry.auto_approve promoted it: as an operator's approval would
        rebaseline_drift(con, drift)
    return model


def serving_cost(candidate: Candidate, registry: RegistrySettings, latency_samples: int) -> ServingCost:
    """The candidate's latency and memory as the service would run it: predicting its holdout texts, or answering
    its held-out prompts with `COST_NEW_TOKENS` tokens each."""
    job = read_job(run_dir_for(candidate.path))
    texts = [row.text for row in job.data.holdout][:COST_TEXTS]
    if job.settings.task_kind == "generation":
        return measure_generation_cost(candidate.model_dir, _existing(candidate.path / "int8"), registry.int8,
                                       registry.torch_threads, texts, COST_NEW_TOKENS, latency_samples)  # fmt: skip
    served_as = ServedAs(
        int8=registry.int8,
        batch_size=registry.predict_batch_size,
        max_batch_texts=registry.max_batch_texts,
        threads=registry.torch_threads,
    )
    return measure_serving(candidate.model_dir, _existing(candidate.path / "int8"), served_as, texts, latency_samples)


def evaluations(
    candidate: Candidate, cost: ServingCost, production: ModelRecord | None
) -> tuple[Evaluation, Evaluation | None]:
    """What the gate reads: both models' predictions on the same holdout rows, the candidate's latency and memory
    as served (production's from its own record)."""
    from registry.evaluation import Evaluation, HoldoutPredictions

    mine = {e: HoldoutPredictions(p.labels, p.candidate, p.candidate_nll, p.tokens)
            for e, p in candidate.predictions.items()}  # fmt: skip
    candidate_eval = Evaluation(mine, cost.latency_ms_p99, cost.peak_memory_mb)
    if production is None:
        return candidate_eval, None
    theirs = {}
    for episode, predictions in candidate.predictions.items():
        if predictions.parent is None:
            raise ValueError(f"the run has no predictions of production {production.version} on episode {episode}")
        theirs[episode] = HoldoutPredictions(predictions.labels, predictions.parent, predictions.parent_nll,
                                             predictions.tokens)  # fmt: skip
    metrics = production.metrics
    return candidate_eval, Evaluation(theirs, metrics["latency_ms_p99"], metrics["peak_memory_mb"])


def build_lineage(
    con: duckdb.DuckDBPyConnection, record: TrainingRun, candidate: Candidate, cost: ServingCost, monitor: str
) -> Lineage:
    """Where the candidate came from; its drift event is the one `monitor` (the watched stream's) recorded."""
    from registry.candidates import Lineage

    run_dir = run_dir_for(candidate.path)
    report = candidate.report
    job = json.loads((run_dir / JOB_FILE).read_text())
    return Lineage(
        kafka_ranges=[asdict(span) for span in history.kafka_ranges(con, record.first_row_id, record.last_row_id)],
        snapshot={
            "episode": record.episode,
            "new_window_row_ids": [record.first_row_id, record.last_row_id],
            "replay_from_row_ids_before": record.first_row_id,
            **(record.data or {}),
            "rows_file": str(run_dir / ROWS_FILE),
            "rows_sha256": hashlib.sha256((run_dir / ROWS_FILE).read_bytes()).hexdigest(),
        },
        drift_event=None if record.drift_row_id is None else event_record(con, record.drift_row_id, monitor),
        training_run={
            "id": record.id,
            "trigger": record.trigger,
            "why": record.why,
            "actor": record.actor,
            "attempt": record.attempt,
            "parent_version": record.parent_version,
            "started_at": str(record.started_at),
            "directory": str(run_dir.parent),
            "settings": job["settings"],
            "fit": {
                "epochs": candidate.fit.epochs,
                "best_epoch": candidate.fit.best_epoch,
                "stopped_early": candidate.fit.stopped_early,
                "train_seconds": round(candidate.fit.train_seconds, 1),
                "samples_per_s": round(candidate.fit.samples_per_s, 1),
            },
        },
        report={
            "path": str(candidate.path / CANDIDATE_FILE),
            "newest_episode": report.newest_episode,
            **episode_scores(report),
            "forgetting": {str(e): round(v, 4) for e, v in report.forgetting.items()},
            "backward_transfer": report.backward_transfer,
            "latency_ms_p99": round(cost.latency_ms_p99, 2),
            "peak_memory_mb": round(cost.peak_memory_mb, 1),
            "cost_measured": _cost_measured(job["settings"].get("task_kind") == "generation", cost),
        },
    )


def _cost_measured(generation: bool, cost: ServingCost) -> str:
    if generation:
        return f"as served, {cost.texts} single-prompt requests answered with {COST_NEW_TOKENS} tokens each"
    return f"as served, predicting {cost.texts} holdout texts"


def episode_scores(report: EvaluationReport) -> dict[str, dict[str, float]]:
    """Each score's value per episode: macro_f1 and accuracy of a classifier; chrf, bleu and perplexity of a
    generative model's answers."""
    table: dict[str, dict[str, float]] = {}
    for episode, scores in sorted(report.episodes.items()):
        values = (
            {"chrf": scores.chrf, "bleu": scores.bleu, "perplexity": scores.perplexity}
            if isinstance(scores, TextScores)
            else {"macro_f1": scores.macro_f1, "accuracy": scores.accuracy}
        )
        for name, value in values.items():
            table.setdefault(name, {})[str(episode)] = round(value, 4)
    return table


def _existing(path: Path) -> Path | None:
    return path if path.is_dir() else None
