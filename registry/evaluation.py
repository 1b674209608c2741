"""What the gate reads about a model: its predictions on every episode's holdout, its latency and its memory."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from common.scores import Metric, metric_value
from common.text_scores import pooled_perplexity
from registry.errors import RegistryError

GateMetric = Metric | Literal["perplexity"]


@dataclass(frozen=True)
class HoldoutPredictions:
    """One episode's holdout rows: the correct label and the model's prediction of each, in a fixed row order.

    The candidate's and production's predictions must come from the same rows in the same order, so that
    the bootstrap can resample rows in pairs. A generative model's rows also carry its loss on each reference
    answer (`nll`, summed negative log-likelihood in nats, over `tokens` tokens), which the perplexity gate reads.
    """

    labels: tuple[str, ...]
    predicted: tuple[str, ...]
    nll: tuple[float, ...] | None = None
    tokens: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        assert len(self.labels) == len(self.predicted), "one prediction per holdout row"
        assert self.nll is None or self.tokens is not None and len(self.nll) == len(self.tokens) == len(self.labels)


@dataclass(frozen=True)
class Evaluation:
    """A model measured for the gate: per-episode holdout predictions, single-text p99 latency, peak memory."""

    episodes: Mapping[int, HoldoutPredictions]
    latency_ms_p99: float
    peak_memory_mb: float

    @property
    def newest_episode(self) -> int:
        return max(self.episodes)


def holdout_score(holdout: HoldoutPredictions, metric: GateMetric) -> float:
    """`metric` of one model on one holdout: a score of its predictions (or answers) against the labels (or
    reference answers), or the perplexity of the reference answers from its losses."""
    if metric != "perplexity":
        return metric_value(holdout.labels, holdout.predicted, metric)
    return pooled_perplexity(*answer_losses(holdout))


def answer_losses(holdout: HoldoutPredictions) -> tuple[tuple[float, ...], tuple[int, ...]]:
    """The model's loss on each reference answer, and each answer's tokens."""
    if holdout.nll is None or holdout.tokens is None:
        raise RegistryError(
            "registry.gate_metric=perplexity needs the model's losses on the reference answers, which only a "
            "generative model's evaluation has; use macro_f1 or accuracy for a classifier"
        )
    return holdout.nll, holdout.tokens


def evaluation_to_json(evaluation: Evaluation) -> dict[str, Any]:
    return {
        "episodes": {str(e): _holdout_to_json(h) for e, h in evaluation.episodes.items()},
        "latency_ms_p99": evaluation.latency_ms_p99,
        "peak_memory_mb": evaluation.peak_memory_mb,
    }


def evaluation_from_json(data: Mapping[str, Any]) -> Evaluation:
    return Evaluation(
        episodes={int(e): _holdout_from_json(h) for e, h in data["episodes"].items()},
        latency_ms_p99=float(data["latency_ms_p99"]),
        peak_memory_mb=float(data["peak_memory_mb"]),
    )


def _holdout_to_json(holdout: HoldoutPredictions) -> dict[str, Any]:
    data: dict[str, Any] = {"labels": list(holdout.labels), "predicted": list(holdout.predicted)}
    if holdout.nll is not None and holdout.tokens is not None:
        data |= {"nll": list(holdout.nll), "tokens": list(holdout.tokens)}
    return data


def _holdout_from_json(data: Mapping[str, Any]) -> HoldoutPredictions:
    nll, tokens = data.get("nll"), data.get("tokens")
    losses = None if nll is None else tuple(nll)
    return HoldoutPredictions(tuple(data["labels"]), tuple(data["predicted"]), losses,
                              None if tokens is None else tuple(tokens))  # fmt: skip
