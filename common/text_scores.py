"""BLEU-4 and chrF of generated answers against reference answers: the one place they are computed (the trainer's
reports, the gate and the benches), by sacrebleu with its defaults (13a tokenisation and exponential smoothing for
BLEU; character 6-grams and beta 2 for chrF), on a 0-100 scale; and the perplexity of reference answers pooled
from their per-answer losses."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

from sacrebleu.metrics.bleu import BLEU
from sacrebleu.metrics.chrf import CHRF

TextMetric = Literal["bleu", "chrf"]


def corpus_score(metric: TextMetric, hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """The corpus score of `hypotheses`, one reference each."""
    scorer = BLEU() if metric == "bleu" else CHRF()
    return float(scorer.corpus_score(list(hypotheses), [list(references)]).score)


def pooled_perplexity(losses: Sequence[float], counts: Sequence[int]) -> float:
    """exp of the mean negative log-likelihood per token, pooled over answers: `losses[i]` is answer i's summed
    negative log-likelihood (nats), `counts[i]` its tokens."""
    total = sum(counts)
    return math.exp(sum(losses) / total) if total else math.nan
