"""Seeded synthetic feedback streams with known change points, for tests, benchmarks and backtests."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift.rows import FeedbackRows, FloatArray, IntArray

Kind = Literal["stationary", "abrupt", "ramp", "label_mix", "length", "answers"]
KINDS: tuple[Kind, ...] = ("stationary", "abrupt", "ramp", "label_mix", "length", "answers")
LABELS = ("alpha", "beta", "gamma", "delta")
MIXES = (np.array([0.4, 0.3, 0.2, 0.1]), np.array([0.1, 0.2, 0.3, 0.4]))
BASE_ERROR, ERROR_STEP = 0.10, 0.20
WORDS_PER_TEXT = (8.0, 16.0)
REWRITTEN = (0.2, 0.8)  # `answers`: share of an answer's words a correction replaces, before and after a change
VOCABULARY_SIZE = 3_000


@dataclass(frozen=True)
class SyntheticStream:
    kind: Kind
    rows: FeedbackRows
    change_points: tuple[int, ...]  # row ids where a shift starts


def synthetic_stream(
    kind: Kind, rows: int, change_points: Sequence[int] = (), seed: int = 0, ramp_rows: int = 4_000
) -> SyntheticStream:
    """`rows` rows with row ids 0..rows-1: error rate 0.10, a fixed label mix and text length, except that at
    each change point `abrupt` adds 0.20 to the error rate, `ramp` adds it linearly over `ramp_rows` rows,
    `label_mix` switches between two label mixes and `length` between 8 and 16 words per text.

    `answers` is a generation model's stream instead: 8-word prompts, 16-word answers, 0.10 of them corrected;
    a correction replaces 0.2 of the answer's words, and from each change point alternately 0.8 (the share of
    answers corrected stays: only how much of each is rewritten moves).
    """
    if kind == "stationary" and change_points:
        raise ValueError("a stationary stream has no change points")
    rng = np.random.default_rng(seed)
    index = np.arange(rows)
    regime = np.searchsorted(np.asarray(change_points, dtype=np.int64), index, side="right")
    if kind == "answers":
        return SyntheticStream(kind, _answers(rng, regime), tuple(int(point) for point in change_points))
    error_rate = np.full(rows, BASE_ERROR)
    if kind == "abrupt":
        error_rate += ERROR_STEP * regime
    elif kind == "ramp":
        for point in change_points:
            error_rate += ERROR_STEP * np.clip((index - point + 1) / ramp_rows, 0.0, 1.0)
    mix = regime % 2 if kind == "label_mix" else np.zeros(rows, dtype=np.int64)
    words = np.where((regime % 2 == 1) & (kind == "length"), WORDS_PER_TEXT[1], WORDS_PER_TEXT[0])
    labels = _labels(rng, mix)
    wrong = rng.random(rows) < np.clip(error_rate, 0.0, 1.0)
    shift = rng.integers(1, len(LABELS), rows)
    predictions = np.where(wrong, (labels + shift) % len(LABELS), labels)
    names = pa.array(LABELS, pa.string())
    return SyntheticStream(
        kind=kind,
        rows=FeedbackRows(
            row_id=index.astype(np.int64),
            text=_texts(rng, words),
            label=names.take(pa.array(labels)),
            prediction=names.take(pa.array(predictions)),
        ),
        change_points=tuple(int(point) for point in change_points),
    )


def _labels(rng: np.random.Generator, mix: IntArray) -> IntArray:
    draws = rng.random(len(mix))
    cumulative = np.cumsum(np.stack(MIXES), axis=1)[mix]
    return np.asarray((draws[:, None] >= cumulative).sum(axis=1), dtype=np.int64)


def _answers(rng: np.random.Generator, regime: IntArray) -> FeedbackRows:
    rows = len(regime)
    prompts = _texts(rng, np.full(rows, WORDS_PER_TEXT[0]))
    answers = pc.utf8_split_whitespace(_texts(rng, np.full(rows, WORDS_PER_TEXT[1])))
    words = pc.list_flatten(answers)
    owner = np.asarray(pc.list_parent_indices(answers).to_numpy(), dtype=np.int64)
    corrected = rng.random(rows) < BASE_ERROR
    share = np.asarray(REWRITTEN)[regime % 2]
    replace = corrected[owner] & (rng.random(len(words)) < share[owner])
    vocabulary = _vocabulary()
    substitutes = vocabulary.take(pa.array(rng.integers(len(vocabulary), size=len(words))))
    fixed = pa.ListArray.from_arrays(answers.offsets, pc.if_else(pa.array(replace), substitutes, words))
    return FeedbackRows(
        row_id=np.arange(rows, dtype=np.int64),
        text=prompts,
        label=pc.binary_join(fixed, " "),
        prediction=pc.binary_join(answers, " "),
        confidence=np.full(rows, np.nan),
    )


def _texts(rng: np.random.Generator, mean_words: FloatArray) -> pa.Array:
    vocabulary = _vocabulary()
    weights = 1.0 / (np.arange(len(vocabulary)) + 2.0)
    counts = 1 + rng.poisson(mean_words - 1)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    picks = rng.choice(len(vocabulary), size=int(offsets[-1]), p=weights / weights.sum())
    lists = pa.ListArray.from_arrays(pa.array(offsets), vocabulary.take(pa.array(picks)))
    return pc.binary_join(lists, " ")


def _vocabulary() -> pa.Array:
    """A fixed set of pronounceable made-up words (the same for every seed)."""
    rng = np.random.default_rng(12345)
    consonants, vowels = list("bcdfghjklmnprstvwz"), list("aeiou")
    words: dict[str, None] = {}
    while len(words) < VOCABULARY_SIZE:
        syllables = int(rng.integers(1, 4))
        word = "".join(str(rng.choice(consonants)) + str(rng.choice(vowels)) for _ in range(syllables))
        words.setdefault(word, None)
    return pa.array(list(words), pa.string())
