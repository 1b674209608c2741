"""The paired bootstraps of a generative model's gains: of a generated-text score (BLEU-4 or chrF, from sacrebleu),
each resample drawing prompts with replacement and scoring both models' answers to the same prompts as a corpus;
and of the perplexity of the reference answers, pooled from both models' losses on the same answers."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from common.text_scores import TextMetric, corpus_score, pooled_perplexity
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


def paired_perplexity_bootstrap(
    candidate_nll: Sequence[float],
    production_nll: Sequence[float],
    tokens: Sequence[int],
    samples: int,
    confidence: float,
    seed: int,
) -> PairedGain:
    """The candidate's and production's perplexity of the same reference answers; the gain is the share by which
    the candidate's is lower (1 - candidate / production: 0.1 is 10% lower), with its one-sided lower bound."""
    mine, theirs, counts = (np.asarray(values, dtype=np.float64) for values in (candidate_nll, production_nll, tokens))
    picks = np.random.default_rng(seed).integers(0, len(counts), size=(samples, len(counts)))
    resampled = 1.0 - np.exp((mine[picks].sum(axis=1) - theirs[picks].sum(axis=1)) / counts[picks].sum(axis=1))
    candidate, production = pooled_perplexity(candidate_nll, tokens), pooled_perplexity(production_nll, tokens)
    lower_bound = float(np.quantile(resampled, 1.0 - confidence))
    return PairedGain(candidate, production, 1.0 - candidate / production, lower_bound, confidence, samples)
