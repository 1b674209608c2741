"""The reference: what the stream looked like during warm-up, accumulated exactly (integers only).

Every sum is kept in fixed point so that the same rows give the same reference however they were batched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift.features import RowFeatures
from drift.rows import FloatArray, IntArray

SCALE = 1_000_000  # fixed-point unit of the per-row numbers
MOMENT_SIGNALS = ("error", "edit", "length", "confidence", "distance")


def fixed_point(values: FloatArray) -> IntArray:
    return np.asarray(np.rint(values * SCALE), dtype=np.int64)


@dataclass
class Moments:
    count: int = 0
    total: int = 0  # sum of fixed-point values
    squares: int = 0  # sum of their squares (Python int: no overflow)

    def add(self, values: FloatArray) -> None:
        present = fixed_point(values[~np.isnan(values)])
        self.count += len(present)
        self.total += int(present.sum())
        self.squares += sum(value * value for value in present.tolist())

    @property
    def mean(self) -> float:
        return self.total / self.count / SCALE if self.count else math.nan

    @property
    def std(self) -> float:
        if self.count < 2:
            return math.nan
        variance = (self.squares - self.total * self.total / self.count) / (self.count - 1)
        return math.sqrt(max(variance, 0.0)) / SCALE


@dataclass
class Reference:
    """Accumulates warm-up rows; `freeze()` turns the token counts into the vocabulary."""

    ngram_buckets: int
    rows: int = 0
    first_row_id: int | None = None
    last_row_id: int | None = None
    moments: dict[str, Moments] = field(default_factory=lambda: {name: Moments() for name in MOMENT_SIGNALS})
    token_counts: dict[str, int] = field(default_factory=dict)
    label_counts: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    ngram_counts: IntArray = field(init=False)
    vocabulary: pa.Array | None = None
    tokens: int = 0
    unseen_rate: float = math.nan  # Good-Turing: share of tokens seen once = chance the next token is new

    def __post_init__(self) -> None:
        self.ngram_counts = np.zeros(self.ngram_buckets, dtype=np.int64)

    def add(self, features: RowFeatures, row_ids: IntArray, start: int, stop: int) -> None:
        if stop <= start:
            return
        if self.first_row_id is None:
            self.first_row_id = int(row_ids[start])
        self.last_row_id = int(row_ids[stop - 1])
        self.rows += stop - start
        self.moments["error"].add(features.error[start:stop])
        self.moments["edit"].add(features.edit[start:stop])
        self.moments["length"].add(features.log_length[start:stop])
        self.moments["confidence"].add(features.confidence[start:stop])
        self.moments["distance"].add(features.distance[start:stop])
        labels = np.bincount(features.label[start:stop])
        self.label_counts = _padded(self.label_counts, len(labels)) + _padded(labels, len(self.label_counts))
        first, last = features.ngram_span(start, stop)
        self.ngram_counts += np.bincount(features.ngram[first:last], minlength=self.ngram_buckets)
        first, last = features.token_span(start, stop)
        counted = pc.value_counts(features.tokens[first:last])
        for token, count in zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True):
            self.token_counts[token] = self.token_counts.get(token, 0) + count

    def freeze(self) -> None:
        self.vocabulary = pa.array(list(self.token_counts), pa.string())
        self.tokens = sum(self.token_counts.values())
        once = sum(1 for count in self.token_counts.values() if count == 1)
        self.unseen_rate = once / self.tokens if self.tokens else math.nan
        self.token_counts = {}


def _padded(counts: IntArray, width: int) -> IntArray:
    if len(counts) >= width:
        return counts
    return np.concatenate([counts, np.zeros(width - len(counts), dtype=np.int64)])
