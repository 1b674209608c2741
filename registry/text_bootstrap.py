"""The paired bootstrap of a generated-text score difference (BLEU-4 or chrF, from sacrebleu): each resample draws
prompts with replacement and scores both models' answers to the same prompts as a corpus."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.text_scores import TextMetric, corpus_score
from registry.bootstrap import PairedGain


def paired_text_bootstrap(
    references: Sequence[str],
    candidate: Sequence[str],
    production: Sequence[str],
    metric: TextMetric,
    samples: int,
    confidence: float,
    seed: int,
) -> PairedGain:
    """Candidate minus production on the same prompts: the corpus score's gain and its one-sided lower bound."""
    rows = len(references)
    rng = np.random.default_rng(seed)
    gains = []
    for picks in rng.integers(0, rows, size=(samples, rows)):
        chosen = [references[i] for i in picks]
        gains.append(corpus_score(metric, [candidate[i] for i in picks], chosen)
                     - corpus_score(metric, [production[i] for i in picks], chosen))  # fmt: skip
    return PairedGain.of(
        corpus_score(metric, candidate, references), corpus_score(metric, production, references),
        np.array(gains, dtype=np.float64), confidence,
    )  # fmt: skip
