"""Near-duplicate detection: cosine similarity of hashed character 4-gram counts, greedy in priority order.

Cost: building the vectors is linear in the text length (~1 s per 10k tweets); the comparison is one
float32 matrix product per block against the rows kept so far, O(n² · 2048) multiply-adds.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

DIMENSIONS = 2048
GRAM = 4
BLOCK = 512

Matrix = npt.NDArray[np.float32]


def vectorize(texts: Sequence[str]) -> Matrix:
    """L2-normalised hashed character 4-gram counts, one row per text."""
    vectors = np.zeros((len(texts), DIMENSIONS), dtype=np.float32)
    for row, text in enumerate(texts):
        normal = " ".join(text.lower().split())
        grams = [normal[i : i + GRAM] for i in range(max(1, len(normal) - GRAM + 1))]
        for gram in grams:
            vectors[row, zlib.crc32(gram.encode("utf-8")) % DIMENSIONS] += 1.0
    vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return vectors


def near_duplicates(texts: Sequence[str], threshold: float, against: Sequence[str] = ()) -> list[bool]:
    """For each text, whether it is a near-duplicate of an earlier kept text or of any text in `against`.

    Earlier texts win: pass them in priority order.
    """
    vectors = vectorize(texts)
    dropped = np.zeros(len(texts), dtype=bool)
    if against:
        reference = vectorize(against)
        for start in range(0, len(texts), BLOCK):
            block = vectors[start : start + BLOCK]
            dropped[start : start + BLOCK] = (block @ reference.T).max(axis=1) >= threshold
    kept: list[Matrix] = []
    for start in range(0, len(texts), BLOCK):
        stop = min(start + BLOCK, len(texts))
        block = vectors[start:stop]
        for earlier in kept:
            dropped[start:stop] |= (block @ earlier.T).max(axis=1) >= threshold
        similar = (block @ block.T) >= threshold
        for i in range(stop - start):
            if not dropped[start + i]:
                later = similar[i, i + 1 :]
                dropped[start + i + 1 : stop] |= later
        kept.append(block[~dropped[start:stop]])
    return [bool(flag) for flag in dropped]
