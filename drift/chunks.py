"""Rows summarised per check interval ("chunk"), and the recent window as the last few chunks.

All sums are integers (fixed point), so a window's totals do not depend on how rows were batched.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from drift.features import RowFeatures
from drift.reference import SCALE, fixed_point
from drift.rows import FloatArray, IntArray

NUMERIC = ("error", "edit", "unseen", "length", "confidence", "distance")  # the first columns of signals.SIGNALS


@dataclass(frozen=True)
class Chunks:
    """Per-chunk totals: row 0 is the oldest chunk."""

    rows: IntArray  # (n,)
    first_row_id: IntArray  # (n,)
    last_row_id: IntArray  # (n,)
    counts: IntArray  # (n, len(NUMERIC)) usable rows (tokens for "unseen")
    sums: IntArray  # (n, len(NUMERIC)) fixed-point sums (unseen tokens for "unseen")
    labels: IntArray  # (n, labels known when summarised)
    ngrams: IntArray  # (n, buckets)

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def empty(cls, buckets: int) -> Chunks:
        none = np.zeros(0, dtype=np.int64)
        return cls(
            rows=none,
            first_row_id=none,
            last_row_id=none,
            counts=np.zeros((0, len(NUMERIC)), dtype=np.int64),
            sums=np.zeros((0, len(NUMERIC)), dtype=np.int64),
            labels=np.zeros((0, 0), dtype=np.int64),
            ngrams=np.zeros((0, buckets), dtype=np.int64),
        )

    def take(self, start: int, stop: int | None = None) -> Chunks:
        pick = slice(start, stop)
        return Chunks(
            self.rows[pick],
            self.first_row_id[pick],
            self.last_row_id[pick],
            self.counts[pick],
            self.sums[pick],
            self.labels[pick],
            self.ngrams[pick],
        )

    def with_numeric_column(self, column: int) -> Chunks:
        """With an empty numeric column inserted at `column` (a state saved before that signal existed)."""
        counts, sums = (np.insert(values, column, 0, axis=1) for values in (self.counts, self.sums))
        return Chunks(self.rows, self.first_row_id, self.last_row_id, counts, sums, self.labels, self.ngrams)

    def with_labels(self, width: int) -> Chunks:
        extra = width - self.labels.shape[1]
        if extra <= 0:
            return self
        labels = np.pad(self.labels, ((0, 0), (0, extra)))
        return Chunks(self.rows, self.first_row_id, self.last_row_id, self.counts, self.sums, labels, self.ngrams)


def concat(older: Chunks, newer: Chunks) -> Chunks:
    width = max(older.labels.shape[1], newer.labels.shape[1])
    older, newer = older.with_labels(width), newer.with_labels(width)
    return Chunks(
        np.concatenate([older.rows, newer.rows]),
        np.concatenate([older.first_row_id, newer.first_row_id]),
        np.concatenate([older.last_row_id, newer.last_row_id]),
        np.concatenate([older.counts, newer.counts]),
        np.concatenate([older.sums, newer.sums]),
        np.concatenate([older.labels, newer.labels]),
        np.concatenate([older.ngrams, newer.ngrams]),
    )


def merge_into_first(pending: Chunks, block: Chunks) -> Chunks:
    """Add a partial chunk (0 or 1 entries) to the first chunk of `block`."""
    if not len(pending):
        return block
    width = max(pending.labels.shape[1], block.labels.shape[1])
    pending, block = pending.with_labels(width), block.with_labels(width)
    head = np.zeros(len(block), dtype=np.int64)
    head[0] = 1
    first_row_id = block.first_row_id.copy()
    first_row_id[0] = pending.first_row_id[0]
    return Chunks(
        block.rows + head * pending.rows[0],
        first_row_id,
        block.last_row_id,
        block.counts + head[:, None] * pending.counts[0],
        block.sums + head[:, None] * pending.sums[0],
        block.labels + head[:, None] * pending.labels[0],
        block.ngrams + head[:, None] * pending.ngrams[0],
    )


def summarise(
    features: RowFeatures,
    row_ids: IntArray,
    unseen: tuple[FloatArray, FloatArray],
    start: int,
    stop: int,
    offset: int,
    chunk_rows: int,
) -> tuple[Chunks, IntArray]:
    """Chunks of rows[start:stop], the first one already holding `offset` rows; also each row's chunk."""
    size = stop - start
    chunk = (offset + np.arange(size, dtype=np.int64)) // chunk_rows
    n = int(chunk[-1]) + 1
    tokens, missing = unseen
    per_row = [
        (features.error[start:stop], None),
        (features.edit[start:stop], None),
        (missing, tokens),
        (features.log_length[start:stop], None),
        (features.confidence[start:stop], None),
        (features.distance[start:stop], None),
    ]
    counts = np.zeros((n, len(NUMERIC)), dtype=np.int64)
    sums = np.zeros((n, len(NUMERIC)), dtype=np.int64)
    for column, (values, weights) in enumerate(per_row):
        if weights is None:
            present = ~np.isnan(values)
            counts[:, column] = np.bincount(chunk[present], minlength=n)
            scaled = fixed_point(values[present]).astype(np.float64)  # exact: chunk sums stay below 2**53
            sums[:, column] = np.bincount(chunk[present], weights=scaled, minlength=n).astype(np.int64)
        else:
            counts[:, column] = np.bincount(chunk, weights=weights, minlength=n).astype(np.int64)
            sums[:, column] = np.bincount(chunk, weights=values * SCALE, minlength=n).astype(np.int64)
    labels = features.label[start:stop]
    width = int(labels.max()) + 1 if size else 0
    label_counts = np.bincount(chunk * width + labels, minlength=n * width).reshape(n, width)
    first, last = features.ngram_span(start, stop)
    buckets = features.ngram_buckets
    ngram_chunk = chunk[features.ngram_row[first:last] - start]
    ngrams = np.bincount(ngram_chunk * buckets + features.ngram[first:last], minlength=n * buckets).reshape(n, buckets)
    ids = row_ids[start:stop]
    bounds = np.searchsorted(chunk, np.arange(n + 1))
    return (
        Chunks(
            rows=np.diff(bounds).astype(np.int64),
            first_row_id=ids[bounds[:-1]],
            last_row_id=ids[bounds[1:] - 1],
            counts=counts,
            sums=sums,
            labels=label_counts,
            ngrams=ngrams,
        ),
        chunk,
    )


def window_totals(history: Chunks, window_chunks: int) -> tuple[Chunks, IntArray]:
    """Totals of the `window_chunks` chunks ending at each chunk of `history`, and how many chunks each spans."""
    ends = np.arange(1, len(history) + 1)
    starts = np.maximum(ends - window_chunks, 0)

    def rolling(values: IntArray) -> IntArray:
        cumulative = np.concatenate([np.zeros((1, *values.shape[1:]), dtype=np.int64), np.cumsum(values, axis=0)])
        return np.asarray(cumulative[ends] - cumulative[starts], dtype=np.int64)

    totals = Chunks(
        rows=rolling(history.rows),
        first_row_id=history.first_row_id[starts],
        last_row_id=history.last_row_id,
        counts=rolling(history.counts),
        sums=rolling(history.sums),
        labels=rolling(history.labels),
        ngrams=rolling(history.ngrams),
    )
    return totals, ends - starts
