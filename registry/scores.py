"""Scores of predictions (accuracy, macro-F1, per-class recall) and the paired bootstrap of a score difference."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

Metric = Literal["macro_f1", "accuracy"]
IntArray = NDArray[np.int64]


def encode(*columns: Sequence[str]) -> tuple[list[str], list[IntArray]]:
    """Map labels to integers over the union of all columns."""
    classes = sorted(set().union(*(set(column) for column in columns)))
    index = {label: i for i, label in enumerate(classes)}
    return classes, [np.array([index[label] for label in column], dtype=np.int64) for column in columns]


def batched_score(true: IntArray, predicted: IntArray, classes: int, metric: Metric) -> NDArray[np.float64]:
    """The score of every row of `true`/`predicted` (shape: samples x rows)."""
    if metric == "accuracy":
        return np.asarray((true == predicted).mean(axis=1), dtype=np.float64)
    samples = true.shape[0]
    offset = (np.arange(samples) * classes)[:, None]
    size = samples * classes
    support = np.bincount((true + offset).ravel(), minlength=size).reshape(samples, classes)
    called = np.bincount((predicted + offset).ravel(), minlength=size).reshape(samples, classes)
    hits = np.bincount((true + offset)[true == predicted], minlength=size).reshape(samples, classes)
    denominator = support + called
    f1 = np.divide(2 * hits, denominator, out=np.zeros(hits.shape), where=denominator > 0)
    # Averaged over the classes in the sample's truth, as trainer.metrics does: a class the model says but the
    # rows never have (a new label, asked about an old episode) is paid for once, by the recall of the rows it
    # took, not a second time by a zero of its own (scikit-learn's default, which punishes a growing label set).
    present = support > 0
    return np.asarray((f1 * present).sum(axis=1) / np.maximum(present.sum(axis=1), 1), dtype=np.float64)


def score(labels: Sequence[str], predicted: Sequence[str], metric: Metric) -> float:
    if not labels:
        return 0.0
    classes, (true, guess) = encode(labels, predicted)
    return float(batched_score(true[None, :], guess[None, :], len(classes), metric)[0])


def recall_per_class(labels: Sequence[str], predicted: Sequence[str]) -> dict[str, tuple[float, int]]:
    """(recall, support) of every class that occurs in `labels`."""
    result: dict[str, tuple[float, int]] = {}
    for label in sorted(set(labels)):
        rows = [i for i, value in enumerate(labels) if value == label]
        hits = sum(1 for i in rows if predicted[i] == label)
        result[label] = (hits / len(rows), len(rows))
    return result


@dataclass(frozen=True)
class PairedGain:
    """Candidate minus production on the same rows: the point estimate and a one-sided bootstrap lower bound."""

    candidate: float
    production: float
    gain: float
    lower_bound: float
    confidence: float
    samples: int


def paired_bootstrap(
    labels: Sequence[str],
    candidate: Sequence[str],
    production: Sequence[str],
    metric: Metric,
    samples: int,
    confidence: float,
    seed: int,
) -> PairedGain:
    """Resample rows with replacement; each resample scores both models on the same rows."""
    classes, (true, cand, prod) = encode(labels, candidate, production)
    rows = len(true)
    rng = np.random.default_rng(seed)
    gains: list[NDArray[np.float64]] = []
    chunk = max(1, 2_000_000 // max(rows, 1))
    for start in range(0, samples, chunk):
        picks = rng.integers(0, rows, size=(min(chunk, samples - start), rows))
        gains.append(
            batched_score(true[picks], cand[picks], len(classes), metric)
            - batched_score(true[picks], prod[picks], len(classes), metric)
        )
    point_candidate = score(labels, candidate, metric)
    point_production = score(labels, production, metric)
    return PairedGain(
        candidate=point_candidate,
        production=point_production,
        gain=point_candidate - point_production,
        lower_bound=float(np.quantile(np.concatenate(gains), 1.0 - confidence)),
        confidence=confidence,
        samples=samples,
    )
