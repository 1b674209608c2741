"""Evaluation of a model on every episode's holdout, latency and peak memory of prediction, INT8 export."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from trainer.data import Row, TrainingData
from trainer.int8 import load_int8
from trainer.metrics import backward_transfer, forgetting, score_predictions
from trainer.predict import Classifier, load_classifier, logits
from trainer.quantize import export_int8, weights_bytes
from trainer.results import EpisodePredictions, EpisodeScores, EvaluationReport, Int8Export
from trainer.served import predict
from trainer.serving_cost import peak_memory_mb, single_text_latency

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scored:
    """One model on one episode's holdout: the predicted label (or generated answer) of every row, in the holdout's
    order, and the scores."""

    predicted: tuple[str, ...]
    scores: EpisodeScores
    nll: tuple[float, ...] | None = None  # a generative model's loss on each reference answer, and its tokens
    tokens: tuple[int, ...] | None = None


def predicted_labels(classifier: Classifier, texts: Sequence[str], allowed: int | None = None) -> list[str]:
    """Argmax labels; `allowed` restricts the choice to the first labels (a parent scored before its head grew)."""
    scores = logits(classifier, texts)
    if allowed is not None:
        scores = scores[:, :allowed]
    return [classifier.labels[i] for i in scores.argmax(dim=1).tolist()]


def predict_episodes(classifier: Classifier, holdout: Mapping[int, Sequence[Row]], allowed: int | None = None
                     ) -> dict[int, Scored]:  # fmt: skip
    """Every episode's holdout predicted once, and scored; `allowed` as in `predicted_labels`."""
    results = {}
    for episode, rows in holdout.items():
        predicted = tuple(predicted_labels(classifier, [row.text for row in rows], allowed))
        results[episode] = Scored(
            predicted, score_predictions([row.label for row in rows], predicted, classifier.labels)
        )
    return results


def score_episodes(classifier: Classifier, holdout: Mapping[int, Sequence[Row]], allowed: int | None = None
                   ) -> dict[int, EpisodeScores]:  # fmt: skip
    return {episode: scored.scores for episode, scored in predict_episodes(classifier, holdout, allowed).items()}


def evaluate(
    model_dir: Path,
    data: TrainingData,
    parent: Mapping[int, Scored] | None,
    latency_samples: int,
    int8_dir: Path | None,
) -> tuple[EvaluationReport, dict[int, EpisodePredictions]]:
    """The report of a saved candidate model and both models' predictions on every episode's holdout, row by row;
    `parent` was predicted on the same holdouts (`data.holdout_by_episode()`) before training."""
    holdout = data.holdout_by_episode()
    newest = max(holdout)
    reset_peak_memory()
    classifier = load_classifier(model_dir)
    scored = predict_episodes(classifier, holdout)
    p50, p99 = single_text_latency(classifier, [row.text for row in holdout[newest]], latency_samples)
    peak = peak_memory_mb()
    episodes = {e: s.scores for e, s in scored.items()}
    parent_scores = None if parent is None else {e: s.scores for e, s in parent.items()}
    before = {e: s.headline for e, s in (parent_scores or {}).items()}
    after = {e: s.headline for e, s in episodes.items()}
    int8 = None if int8_dir is None else int8_report(classifier, model_dir, int8_dir, data.holdout)
    report = EvaluationReport(
        newest_episode=newest,
        episodes=episodes,
        parent_episodes=parent_scores,
        forgetting=forgetting(before, after, newest),
        backward_transfer=backward_transfer(before, after, newest),
        latency_ms_p50=p50,
        latency_ms_p99=p99,
        peak_memory_mb=peak,
        int8=int8,
    )
    return report, paired_predictions(holdout, scored, parent)


def paired_predictions(holdout: Mapping[int, Sequence[Row]], candidate: Mapping[int, Scored],
                       parent: Mapping[int, Scored] | None) -> dict[int, EpisodePredictions]:  # fmt: skip
    """Each holdout row's id and label beside the candidate's prediction and the parent's, in the holdout's order."""
    return {
        episode: EpisodePredictions(
            ids=tuple(row.id for row in rows),
            labels=tuple(row.label for row in rows),
            candidate=candidate[episode].predicted,
            parent=None if parent is None else parent[episode].predicted,
            candidate_nll=candidate[episode].nll,
            parent_nll=None if parent is None else parent[episode].nll,
            tokens=candidate[episode].tokens,
        )
        for episode, rows in sorted(holdout.items())
    }


def int8_report(classifier: Classifier, model_dir: Path, dest: Path, rows: Sequence[Row]) -> Int8Export:
    """Export the INT8 model and score it against the fp32 one on the holdout rows."""
    export_int8(model_dir, dest)
    quantized = load_int8(dest, classifier.batch_size, torch.get_num_threads())
    texts, true = [row.text for row in rows], [row.label for row in rows]
    fp32 = score_predictions(true, predicted_labels(classifier, texts), classifier.labels).accuracy
    int8 = score_predictions(true, [p.label for p in predict(quantized, texts)], classifier.labels).accuracy
    fp32_bytes, int8_bytes = weights_bytes(model_dir), weights_bytes(dest)
    return Int8Export(
        path=str(dest),
        fp32_bytes=fp32_bytes,
        int8_bytes=int8_bytes,
        size_reduction_pct=100.0 * (1 - int8_bytes / fp32_bytes),
        fp32_accuracy=fp32,
        int8_accuracy=int8,
        accuracy_loss_pts=100.0 * (fp32 - int8),
    )


def reset_peak_memory() -> None:
    """Reset the kernel's peak-RSS mark of this process (Linux); elsewhere the lifetime peak is reported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        log.debug("cannot reset the peak RSS mark; reporting the process's lifetime peak")
