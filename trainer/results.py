"""Plain values a run hands back to the daemon: scores, the evaluation report, the run record, the candidate."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

RunStatus = Literal["running", "succeeded", "failed", "cancelled"]
CANDIDATE_FILE = "candidate.json"
PREDICTIONS_FILE = "holdout_predictions.json"


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Scores:
    """Classification scores on one set of rows; `confusion[true][predicted]` follows `labels`."""

    rows: int
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]

    @property
    def headline(self) -> float:
        return self.macro_f1


@dataclass(frozen=True)
class TextScores:
    """A generative model's answers to one set of prompts: the perplexity of the reference answers, and BLEU-4 and
    chrF (sacrebleu's, 0-100) of the generated answers against them."""

    rows: int
    perplexity: float
    bleu: float
    chrf: float

    @property
    def headline(self) -> float:
        """chrF on the 0-1 scale the gate compares (BLEU-4 of one-line answers is too sparse to rank models)."""
        return self.chrf / 100


EpisodeScores = Scores | TextScores


@dataclass(frozen=True)
class Int8Export:
    path: str
    fp32_bytes: int
    int8_bytes: int
    size_reduction_pct: float
    fp32_accuracy: float
    int8_accuracy: float
    accuracy_loss_pts: float


@dataclass(frozen=True)
class EvaluationReport:
    """The candidate (and the parent, when there is one) on every episode's holdout.

    `forgetting[e]` is the parent's headline score (macro-F1; chrF / 100 of generated answers) minus the
    candidate's on earlier episode e (positive: forgotten); `backward_transfer` is the mean of candidate minus parent
    over the earlier episodes.
    """

    newest_episode: int
    episodes: Mapping[int, EpisodeScores]
    parent_episodes: Mapping[int, EpisodeScores] | None
    forgetting: dict[int, float]
    backward_transfer: float | None
    latency_ms_p50: float
    latency_ms_p99: float
    peak_memory_mb: float
    int8: Int8Export | None = None

    def episode_matrix(self) -> dict[str, dict[int, float]]:
        """The headline score per episode, one row per model ('parent', 'candidate')."""
        matrix = {"candidate": {e: s.headline for e, s in self.episodes.items()}}
        if self.parent_episodes is not None:
            matrix["parent"] = {e: s.headline for e, s in self.parent_episodes.items()}
        return matrix


@dataclass(frozen=True)
class EpisodePredictions:
    """One episode's holdout, row i of every field being the same row: its id, its correct label, the candidate's
    predicted label and the parent's (None without a parent), so the two models' predictions pair up row by row.

    A generative model's rows have answers for labels and predictions, and each model's loss on the reference
    answer: `candidate_nll` / `parent_nll` (summed negative log-likelihood, nats) over `tokens` answer tokens.
    """

    ids: tuple[str, ...]
    labels: tuple[str, ...]
    candidate: tuple[str, ...]
    parent: tuple[str, ...] | None
    candidate_nll: tuple[float, ...] | None = None
    parent_nll: tuple[float, ...] | None = None
    tokens: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        parent = self.ids if self.parent is None else self.parent
        assert len(self.ids) == len(self.labels) == len(self.candidate) == len(parent), "one prediction per row"


@dataclass(frozen=True)
class FitStats:
    epochs: int
    best_epoch: int
    steps: int
    stopped_early: bool
    train_windows: int
    train_seconds: float
    samples_per_s: float
    best_validation: float  # the best epoch's validation score, a `validation_metric`
    validation_curve: tuple[float, ...]
    loss_curve: tuple[float, ...] = field(default=())
    grad_norm_curve: tuple[float, ...] = field(default=())
    # the model's parameters while it trained, LoRA matrices and the saved head's copy included; 0: not recorded
    trainable_parameters: int = 0
    total_parameters: int = 0
    validation_metric: str = "macro_f1"


@dataclass(frozen=True)
class Candidate:
    """A finished run: `model_dir` is the merged model for `trainer.predict`, `adapter_dir` the LoRA adapter,
    `predictions` every episode's holdout predictions (kept in their own file, `holdout_predictions.json`)."""

    path: Path
    model_dir: Path
    adapter_dir: Path | None
    labels: tuple[str, ...]
    parent: Path | None
    report: EvaluationReport
    fit: FitStats
    predictions: dict[int, EpisodePredictions] = field(repr=False)


@dataclass(frozen=True)
class RunRecord:
    """What `run.json` in the run directory says about a run."""

    status: RunStatus
    out_dir: str
    started: float
    ended: float | None = None
    pid: int | None = None
    reason: str | None = None
    exit_code: int | None = None


def to_json(value: Any) -> Any:
    """A dataclass tree as JSON-able data (tuples become lists, paths strings, int keys strings)."""
    if hasattr(value, "__dataclass_fields__"):
        return to_json(asdict(value))
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: Path, value: Any) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of one."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(to_json(value), indent=1, sort_keys=True))
    os.replace(partial, path)


def scores_from_json(data: dict[str, Any]) -> EpisodeScores:
    if "chrf" in data:
        return TextScores(**data)
    return Scores(
        rows=data["rows"],
        accuracy=data["accuracy"],
        macro_f1=data["macro_f1"],
        per_class={label: ClassScores(**item) for label, item in data["per_class"].items()},
        labels=tuple(data["labels"]),
        confusion=tuple(tuple(row) for row in data["confusion"]),
    )


def report_from_json(data: dict[str, Any]) -> EvaluationReport:
    parent = data["parent_episodes"]
    return EvaluationReport(
        newest_episode=data["newest_episode"],
        episodes={int(e): scores_from_json(s) for e, s in data["episodes"].items()},
        parent_episodes=None if parent is None else {int(e): scores_from_json(s) for e, s in parent.items()},
        forgetting={int(e): value for e, value in data["forgetting"].items()},
        backward_transfer=data["backward_transfer"],
        latency_ms_p50=data["latency_ms_p50"],
        latency_ms_p99=data["latency_ms_p99"],
        peak_memory_mb=data["peak_memory_mb"],
        int8=None if data["int8"] is None else Int8Export(**data["int8"]),
    )


def write_candidate(directory: Path, candidate: Candidate) -> None:
    """`holdout_predictions.json`, then `candidate.json` (everything but the predictions) into `directory`."""
    write_json(directory / PREDICTIONS_FILE, predictions_to_json(candidate.predictions))
    summary = to_json(candidate)
    del summary["predictions"]
    write_json(directory / CANDIDATE_FILE, summary)


def predictions_to_json(predictions: Mapping[int, EpisodePredictions]) -> dict[str, Any]:
    """`{"episodes": [{"episode", "ids", "labels", "candidate", "parent"}, ...]}`, sorted by episode."""
    return {"episodes": [{"episode": e, **to_json(p)} for e, p in sorted(predictions.items())]}


def predictions_from_json(data: Mapping[str, Any]) -> dict[int, EpisodePredictions]:
    return {
        int(item["episode"]): EpisodePredictions(
            ids=tuple(item["ids"]),
            labels=tuple(item["labels"]),
            candidate=tuple(item["candidate"]),
            parent=None if item.get("parent") is None else tuple(item["parent"]),
            candidate_nll=_optional_tuple(item.get("candidate_nll")),
            parent_nll=_optional_tuple(item.get("parent_nll")),
            tokens=_optional_tuple(item.get("tokens")),
        )
        for item in data["episodes"]
    }


def _optional_tuple(values: list[Any] | None) -> tuple[Any, ...] | None:
    return None if values is None else tuple(values)


def load_candidate(path: Path) -> Candidate:
    """Read a finished candidate directory back (`candidate.json` is written last, before the rename)."""
    data = json.loads((path / CANDIDATE_FILE).read_text())
    fit = data["fit"]
    return Candidate(
        path=path,
        model_dir=path / "model",
        adapter_dir=path / "adapter" if data["adapter_dir"] is not None else None,
        labels=tuple(data["labels"]),
        parent=None if data["parent"] is None else Path(data["parent"]),
        report=report_from_json(data["report"]),
        fit=FitStats(
            epochs=fit["epochs"],
            best_epoch=fit["best_epoch"],
            steps=fit["steps"],
            stopped_early=fit["stopped_early"],
            train_windows=fit["train_windows"],
            train_seconds=fit["train_seconds"],
            samples_per_s=fit["samples_per_s"],
            best_validation=fit.get("best_validation", fit.get("best_validation_macro_f1")),  # before 2026-11-30
            validation_curve=tuple(fit["validation_curve"]),
            loss_curve=tuple(fit["loss_curve"]),
            grad_norm_curve=tuple(fit["grad_norm_curve"]),
            trainable_parameters=fit.get("trainable_parameters", 0),
            total_parameters=fit.get("total_parameters", 0),
            validation_metric=fit.get("validation_metric", "macro_f1"),
        ),
        predictions=predictions_from_json(json.loads((path / PREDICTIONS_FILE).read_text())),
    )


def read_record(path: Path) -> RunRecord:
    return RunRecord(**json.loads(path.read_text()))
