"""How much of each answer a person rewrote: word-level Levenshtein distance over the longer answer's words."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from drift.rows import FloatArray


def answer_edits(prediction: pa.Array, label: pa.Array) -> FloatArray:
    """Per row, the edit distance in words from the model's answer to the label, divided by the longer one's
    words: 0 where the label is the answer, 1 where nothing of it was kept, NaN where the row has no answer.

    >>> answer_edits(pa.array(["a b c d", "x y", None]), pa.array(["a b e d", "x y", "z"])).tolist()
    [0.25, 0.0, nan]
    """
    values = np.where(np.asarray(prediction.is_null().to_numpy(zero_copy_only=False)), np.nan, 0.0)
    differs = pc.not_equal(prediction, label).fill_null(False)
    changed = np.flatnonzero(np.asarray(differs.to_numpy(zero_copy_only=False)))
    if not len(changed):
        return values
    index = pa.array(changed)
    answers, corrected = pc.take(prediction, index).to_pylist(), pc.take(label, index).to_pylist()
    values[changed] = [share_rewritten(a.split(), b.split()) for a, b in zip(answers, corrected, strict=True)]
    return values


def share_rewritten(answer: list[str], corrected: list[str]) -> float:
    longer = max(len(answer), len(corrected))
    return levenshtein(answer, corrected) / longer if longer else 0.0


def levenshtein(first: list[str], second: list[str]) -> int:
    """Insertions, deletions and substitutions that turn one word list into the other.

    Bit-parallel (Myers 1999, Hyyrö 2001): one pass over the shorter list, the longer one as bits of an int.
    """
    start = 0
    while start < min(len(first), len(second)) and first[start] == second[start]:
        start += 1
    end = 0
    while end < min(len(first), len(second)) - start and first[-1 - end] == second[-1 - end]:
        end += 1
    pattern, text = first[start : len(first) - end], second[start : len(second) - end]
    if len(pattern) < len(text):
        pattern, text = text, pattern
    if not text:
        return len(pattern)
    positions: dict[str, int] = {}
    for bit, word in enumerate(pattern):
        positions[word] = positions.get(word, 0) | (1 << bit)
    mask, top = (1 << len(pattern)) - 1, 1 << (len(pattern) - 1)
    plus, minus, distance = mask, 0, len(pattern)  # vertical +1 / -1 deltas of the current column
    for word in text:
        equal = positions.get(word, 0)
        vertical = equal | minus
        horizontal = (((equal & plus) + plus) ^ plus) | equal
        up = minus | ~(horizontal | plus)
        down = plus & horizontal
        if up & top:
            distance += 1
        elif down & top:
            distance -= 1
        up = (up << 1) | 1
        down <<= 1
        plus = (down | ~(vertical | up)) & mask
        minus = up & vertical
    return distance
