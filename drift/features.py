"""Per-row numbers computed from a batch at once (Arrow kernels and numpy, no Python loop over rows)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from drift.edits import answer_edits
from drift.rows import FeedbackRows, FloatArray, IntArray

_PUNCTUATION = "\"'.,;:!?()[]{}<>*-_/\\|~`#@&%$+=^…“”‘’—–"
_HASH_MULTIPLIER = np.uint32(2654435761)  # Knuth's multiplicative hash


@dataclass(frozen=True)
class RowFeatures:
    """Columns aligned with the batch, plus flat token and trigram columns that point back to their row."""

    error: FloatArray  # 1.0 where prediction != label, 0.0 where equal, NaN without a prediction
    edit: FloatArray  # answers: share of the answer rewritten (0.0 where kept, NaN without a prediction); labels: NaN
    log_length: FloatArray  # log(1 + characters)
    label: IntArray  # label codes, stable across batches (answers: all 0, an answer is no class)
    confidence: FloatArray
    distance: FloatArray
    tokens: pa.Array  # lower-cased, punctuation trimmed, non-empty
    token_row: IntArray  # batch row of each token, non-decreasing
    ngram: IntArray  # hash bucket of each character trigram
    ngram_row: IntArray  # batch row of each trigram, non-decreasing
    ngram_buckets: int

    def token_span(self, start: int, stop: int) -> tuple[int, int]:
        first, last = np.searchsorted(self.token_row, [start, stop])
        return int(first), int(last)

    def ngram_span(self, start: int, stop: int) -> tuple[int, int]:
        first, last = np.searchsorted(self.ngram_row, [start, stop])
        return int(first), int(last)


def compute_features(
    rows: FeedbackRows, label_codes: dict[str, int], ngram_buckets: int, answers: bool = False
) -> RowFeatures:
    """Features of every row; new labels get the next free code in `label_codes` (which it updates).

    With `answers` (a generation model's rows: the label is the corrected answer) labels are not coded, so
    `label_codes` does not grow with every answer, and `edit` is computed.
    """
    n = len(rows)
    lowered = pc.utf8_lower(rows.text)
    tokens, token_row = _tokens(lowered)
    ngram, ngram_row = _trigrams(lowered, ngram_buckets)
    return RowFeatures(
        error=_errors(rows),
        edit=answer_edits(rows.prediction, rows.label) if answers else np.full(n, np.nan),
        log_length=np.log1p(np.asarray(pc.utf8_length(rows.text).to_numpy(), dtype=np.float64)),
        label=np.zeros(n, dtype=np.int64) if answers else encode_labels(rows.label, label_codes),
        confidence=_or_nan(rows.confidence, n),
        distance=_or_nan(rows.distance, n),
        tokens=tokens,
        token_row=token_row,
        ngram=ngram,
        ngram_row=ngram_row,
        ngram_buckets=ngram_buckets,
    )


def encode_labels(labels: pa.Array, label_codes: dict[str, int]) -> IntArray:
    encoded = pc.dictionary_encode(labels)
    for value in encoded.dictionary.to_pylist():
        label_codes.setdefault(value, len(label_codes))
    mapping = np.array([label_codes[value] for value in encoded.dictionary.to_pylist()], dtype=np.int64)
    indices = np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)
    return mapping[indices] if len(mapping) else np.zeros(0, dtype=np.int64)


def unseen_counts(features: RowFeatures, start: int, stop: int, vocabulary: pa.Array) -> tuple[FloatArray, FloatArray]:
    """(tokens, tokens not in `vocabulary`) per row of rows[start:stop]."""
    first, last = features.token_span(start, stop)
    rows = features.token_row[first:last] - start
    unseen = ~np.asarray(pc.is_in(features.tokens[first:last], value_set=vocabulary).to_numpy(zero_copy_only=False))
    total = np.asarray(np.bincount(rows, minlength=stop - start), dtype=np.float64)
    missing = np.asarray(np.bincount(rows, weights=unseen, minlength=stop - start), dtype=np.float64)
    return total, missing


def _errors(rows: FeedbackRows) -> FloatArray:
    differs = pc.not_equal(rows.prediction, rows.label).cast(pa.float64()).fill_null(float("nan"))
    return np.asarray(differs.to_numpy(zero_copy_only=False), dtype=np.float64)


def _or_nan(values: FloatArray | None, n: int) -> FloatArray:
    return np.full(n, np.nan) if values is None else values


def _tokens(lowered: pa.Array) -> tuple[pa.Array, IntArray]:
    lists = pc.utf8_split_whitespace(lowered)
    flat = pc.utf8_trim(pc.list_flatten(lists), characters=_PUNCTUATION)
    parents = pc.list_parent_indices(lists)
    keep = pc.greater(pc.utf8_length(flat), 0)
    kept = pc.filter(flat, keep)
    rows = np.asarray(pc.filter(parents, keep).to_numpy(), dtype=np.int64)
    return kept, rows


def _trigrams(lowered: pa.Array, buckets: int) -> tuple[IntArray, IntArray]:
    """Hash buckets of the UTF-8 byte trigrams inside each text (none spans two texts)."""
    if isinstance(lowered, pa.ChunkedArray):
        lowered = lowered.combine_chunks()
    offset_type: npt.DTypeLike = np.int64 if pa.types.is_large_string(lowered.type) else np.int32
    offsets = np.frombuffer(lowered.buffers()[1], dtype=offset_type)[lowered.offset : lowered.offset + len(lowered) + 1]
    offsets = offsets.astype(np.int64)
    data = lowered.buffers()[2]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, dtype=np.uint8)
    raw = raw[offsets[0] : offsets[-1]].astype(np.uint32)
    sizes = np.diff(offsets)
    owner = np.repeat(np.arange(len(sizes), dtype=np.int64), sizes)
    if len(raw) < 3:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    inside = owner[:-2] == owner[2:]
    packed = (raw[:-2] << 16) | (raw[1:-1] << 8) | raw[2:]
    shift = np.uint32(32 - int(buckets).bit_length() + 1)
    hashed = (packed * _HASH_MULTIPLIER) >> shift
    return hashed[inside].astype(np.int64), owner[:-2][inside]
