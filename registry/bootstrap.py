"""Per-class recall and the paired bootstrap of a score difference, over the scores in common.scores."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from common.scores import LabelMetric, batched_metric, encode_labels, metric_value


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

    @classmethod
    def of(cls, candidate: float, production: float, resampled: NDArray[np.float64], confidence: float) -> PairedGain:
        """From the point scores and the resampled gains."""
        lower_bound = float(np.quantile(resampled, 1.0 - confidence))
        return cls(candidate, production, candidate - production, lower_bound, confidence, len(resampled))

    def scaled(self, factor: float) -> PairedGain:
        """The same gain on another scale (sacrebleu's 0-100 to the gate's 0-1)."""
        return PairedGain(self.candidate * factor, self.production * factor, self.gain * factor,
                          self.lower_bound * factor, self.confidence, self.samples)  # fmt: skip


def paired_bootstrap(
    labels: Sequence[str],
    candidate: Sequence[str],
    production: Sequence[str],
    metric: LabelMetric,
    samples: int,
    confidence: float,
    seed: int,
) -> PairedGain:
    """Resample rows with replacement; each resample scores both models on the same rows."""
    classes, (true, cand, prod) = encode_labels(labels, candidate, production)
    rows = len(true)
    rng = np.random.default_rng(seed)
    gains: list[NDArray[np.float64]] = []
    chunk = max(1, 2_000_000 // max(rows, 1))
    for start in range(0, samples, chunk):
        picks = rng.integers(0, rows, size=(min(chunk, samples - start), rows))
        gains.append(
            batched_metric(true[picks], cand[picks], len(classes), metric)
            - batched_metric(true[picks], prod[picks], len(classes), metric)
        )
    return PairedGain.of(
        metric_value(labels, candidate, metric), metric_value(labels, production, metric), np.concatenate(gains),
        confidence,
    )  # fmt: skip
