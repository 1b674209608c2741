from __future__ import annotations

import pytest

from trainer.metrics import backward_transfer, forgetting, matrix_forgetting, score_predictions


def test_score() -> None:
    result = score_predictions(["a", "a", "b", "b"], ["a", "b", "b", "b"], ["a", "b", "c"])
    assert result.accuracy == 0.75
    assert result.confusion == ((1, 1, 0), (0, 2, 0), (0, 0, 0))
    assert result.per_class["a"].precision == 1.0
    assert result.per_class["a"].recall == 0.5
    assert result.per_class["b"].f1 == pytest.approx(0.8)
    assert result.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)  # "c" has no support


def test_forgetting_and_backward_transfer() -> None:
    before, after = {0: 0.8, 1: 0.6, 2: 0.1}, {0: 0.7, 1: 0.65, 2: 0.9}
    assert forgetting(before, after, newest=2) == pytest.approx({0: 0.1, 1: -0.05})
    assert backward_transfer(before, after, newest=2) == pytest.approx(-0.025)
    assert backward_transfer(before, after, newest=0) is None


def test_matrix_forgetting_uses_the_best_earlier_score() -> None:
    matrix = [{0: 0.9, 1: 0.2}, {0: 0.7, 1: 0.8}, {0: 0.6, 1: 0.75, 2: 0.9}]
    assert matrix_forgetting(matrix) == pytest.approx({0: 0.3, 1: 0.05})
