"""The signals: what each measures, its threshold, and its value for a window against the reference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from drift.chunks import NUMERIC, Chunks
from drift.reference import SCALE, Reference
from drift.rows import FloatArray, IntArray
from drift.settings import DriftSettings

Direction = Literal["up", "down", "both"]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class SignalSpec:
    name: str
    direction: Direction
    watched_by_detector: bool  # a river detector sees every row; windowed statistics have none
    unit: str


SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec("error", "up", True, "error rate minus reference rate"),
    SignalSpec("edit", "up", True, "mean share of each answer rewritten minus reference mean"),
    SignalSpec("unseen", "up", True, "unseen-token share minus its reference estimate"),
    SignalSpec("length", "both", True, "mean log length shift, reference standard deviations"),
    SignalSpec("confidence", "down", True, "mean confidence shift, reference standard deviations"),
    SignalSpec("distance", "up", True, "mean embedding distance shift, reference standard deviations"),
    SignalSpec("label_mix", "up", False, "Jensen-Shannon divergence of the label mix, bits"),
    SignalSpec("ngram", "up", False, "Jensen-Shannon divergence of character trigrams, bits"),
)
NAMES = tuple(spec.name for spec in SIGNALS)
_WATCHES = {
    "served": {
        "error": "every served prediction: 1 when a person corrected it or an audit label differs from it (the "
        "correction rate, with audit errors)",
        "label_mix": "every served prediction: its label (a correction's or audit's when given, else the predicted)",
        "confidence": "every served prediction: the served model's confidence",
        "distance": "not fed: the service logs no embedding distance",
    },
    "feedback": {
        "error": "feedback of kind audit or label that carries a prediction (corrections and confirmations are "
        "chosen by users: skipped)",
        "label_mix": "every feedback row: the label people gave",
        "confidence": "not fed: feedback rows carry no confidence",
        "distance": "not fed: feedback rows carry no embedding distance",
    },
}
_ANSWERS = {  # drift.output=answers: what differs when the label is the corrected answer
    "served": {
        "edit": "every served answer: the share of its words that a correction or an audit answer rewrote (0 when "
        "kept)",
        "confidence": "not fed: a generated answer carries no confidence",
    },
    "feedback": {
        "edit": "feedback of kind audit or label that carries a prediction: the share of the answer's words its "
        "label rewrote (corrections and confirmations are chosen by users: skipped)",
    },
}
_NOT_EVALUATED = {
    "labels": {"edit": "not evaluated: the model outputs labels, not answers (drift.output)"},
    "answers": {"label_mix": "not evaluated: every answer is its own label (drift.output)"},
}


def watches(stream: str, output: str = "labels") -> dict[str, str]:
    """Per signal, the rows it watches on `stream` (`served` or `feedback`) for a model whose `output` is
    `labels` or `answers`, in words."""
    if output == "answers":
        texts = "every served prediction's prompt" if stream == "served" else "every feedback row's prompt"
    else:
        texts = "every served prediction's text" if stream == "served" else "every feedback row's text"
    given = {**_WATCHES[stream], **(_ANSWERS[stream] if output == "answers" else {}), **_NOT_EVALUATED[output]}
    return {name: given.get(name, texts) for name in NAMES}


STANDARDISED = ("length", "confidence", "distance")


def thresholds(settings: DriftSettings) -> FloatArray:
    by_name = {
        "error": settings.error_threshold,
        "edit": settings.edit_threshold,
        "unseen": settings.unseen_threshold,
        "length": settings.length_threshold,
        "confidence": settings.confidence_threshold,
        "distance": settings.distance_threshold,
        "label_mix": settings.label_threshold,
        "ngram": settings.ngram_threshold,
    }
    return np.array([by_name[name] for name in NAMES], dtype=np.float64)


def reference_values(reference: Reference) -> FloatArray:
    """What each signal's raw quantity was during warm-up (NaN for divergences, which compare distributions)."""
    return np.array(
        [
            reference.moments["error"].mean,
            reference.moments["edit"].mean,
            reference.unseen_rate,
            reference.moments["length"].mean,
            reference.moments["confidence"].mean,
            reference.moments["distance"].mean,
            np.nan,
            np.nan,
        ]
    )


def signal_values(totals: Chunks, spans: IntArray, reference: Reference, settings: DriftSettings) -> FloatArray:
    """One row per window, one column per signal; NaN where the window or the reference is too thin."""
    minimum = settings.min_window_rows
    full = spans == settings.window_rows // settings.check_every_rows
    values = np.full((len(totals), len(SIGNALS)), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        means = totals.sums / SCALE / totals.counts
    for column, name in enumerate(NUMERIC):
        usable = full & (totals.counts[:, column] >= minimum)
        if name == "unseen":
            if reference.tokens < minimum:
                continue
            shift = means[:, column] - reference.unseen_rate
        else:
            moments = reference.moments[name]
            if moments.count < minimum:
                continue
            shift = means[:, column] - moments.mean
            if name in STANDARDISED:
                shift = shift / max(moments.std, 1e-9)
        values[usable, column] = shift[usable]
    if reference.rows >= minimum:
        if settings.output == "labels":  # every answer is its own label: its mix says nothing
            values[full, NAMES.index("label_mix")] = js_divergence(reference.label_counts, totals.labels)[full]
        values[full, NAMES.index("ngram")] = js_divergence(reference.ngram_counts, totals.ngrams)[full]
    return values


def exceeded(values: FloatArray, limits: FloatArray) -> BoolArray:
    """Whether each value lies beyond its signal's threshold in the signal's direction (NaN never does)."""
    up = np.array([spec.direction in ("up", "both") for spec in SIGNALS])
    down = np.array([spec.direction in ("down", "both") for spec in SIGNALS])
    with np.errstate(invalid="ignore"):
        return np.asarray((up & (values >= limits)) | (down & (values <= -limits)), dtype=np.bool_)


def js_divergence(reference: IntArray, recent: IntArray) -> FloatArray:
    """Jensen-Shannon divergence in bits between one count vector and each row of a count matrix."""
    width = max(len(reference), recent.shape[1])
    p = np.pad(reference.astype(np.float64), (0, width - len(reference)))
    q = np.pad(recent.astype(np.float64), ((0, 0), (0, width - recent.shape[1])))
    p_total, q_total = p.sum(), q.sum(axis=1, keepdims=True)
    if p_total == 0:
        return np.full(len(q), np.nan)
    p = p / p_total
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(q_total > 0, q / q_total, np.nan)
        m = (p + q) / 2
        left = np.where(p > 0, p * np.log2(p / m), 0.0).sum(axis=1)
        right = np.where(q > 0, q * np.log2(q / m), 0.0).sum(axis=1)
    divergence = (left + right) / 2
    return np.asarray(np.where(q_total[:, 0] > 0, divergence, np.nan), dtype=np.float64)
