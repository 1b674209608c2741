"""The paired bootstrap of BLEU and chrF gains between two models' answers to the same prompts."""

from __future__ import annotations

import pytest

from common.text_scores import corpus_score
from registry.text_bootstrap import paired_text_bootstrap

REFERENCES = [f"a small domesticated animal kept as pet number {i}" for i in range(40)]
NEAR = [f"a small {'tame ' * (i % 3)}animal kept as a pet number {i}" for i in range(40)]
FAR = [f"the weather is cold today in city {i}" for i in range(40)]


@pytest.mark.parametrize("metric", ["bleu", "chrf"])
def test_a_better_model_gains_with_a_lower_bound_above_zero(metric: str) -> None:
    gain = paired_text_bootstrap(REFERENCES, NEAR, FAR, metric, samples=200, confidence=0.95, seed=0)  # type: ignore[arg-type]
    assert gain.gain == pytest.approx(gain.candidate - gain.production)
    assert gain.candidate == corpus_score(metric, NEAR, REFERENCES)  # type: ignore[arg-type]
    assert 0 < gain.lower_bound <= gain.gain
    same = paired_text_bootstrap(REFERENCES, NEAR, NEAR, metric, samples=50, confidence=0.95, seed=0)  # type: ignore[arg-type]
    assert (same.gain, same.lower_bound) == (0.0, 0.0)


def test_half_right_is_no_sure_gain() -> None:
    mixed = NEAR[:20] + FAR[20:]
    swapped = FAR[:20] + NEAR[20:]
    gain = paired_text_bootstrap(REFERENCES, mixed, swapped, "bleu", samples=300, confidence=0.95, seed=1)
    assert abs(gain.gain) < 1
    assert gain.lower_bound < -1
    assert corpus_score("bleu", REFERENCES, REFERENCES) == pytest.approx(100.0)
