"""What the gate reads about a model: its predictions on every episode's holdout, its latency and its memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HoldoutPredictions:
    """One episode's holdout rows: the correct label and the model's prediction of each, in a fixed row order.

    The candidate's and production's predictions must come from the same rows in the same order, so that
    the bootstrap can resample rows in pairs.
    """

    labels: tuple[str, ...]
    predicted: tuple[str, ...]

    def __post_init__(self) -> None:
        assert len(self.labels) == len(self.predicted), "one prediction per holdout row"


@dataclass(frozen=True)
class Evaluation:
    """A model measured for the gate: per-episode holdout predictions, single-text p99 latency, peak memory."""

    episodes: Mapping[int, HoldoutPredictions]
    latency_ms_p99: float
    peak_memory_mb: float

    @property
    def newest_episode(self) -> int:
        return max(self.episodes)


def evaluation_to_json(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "episodes": {
            str(e): {"labels": list(h.labels), "predicted": list(h.predicted)} for e, h in evaluation.episodes.items()
        },
        "latency_ms_p99": evaluation.latency_ms_p99,
        "peak_memory_mb": evaluation.peak_memory_mb,
    }


def evaluation_from_json(data: Mapping[str, Any]) -> Evaluation:
    return Evaluation(
        episodes={
            int(e): HoldoutPredictions(tuple(h["labels"]), tuple(h["predicted"])) for e, h in data["episodes"].items()
        },
        latency_ms_p99=float(data["latency_ms_p99"]),
        peak_memory_mb=float(data["peak_memory_mb"]),
    )
