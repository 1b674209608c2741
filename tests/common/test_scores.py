"""The one accuracy and macro-F1: a hand count, and the batched form the bootstrap uses agreeing with it."""

from __future__ import annotations

import numpy as np
import pytest

from common.scores import batched_metric, encode_labels, metric_value


def test_macro_f1_matches_a_hand_count() -> None:
    # neg: precision 1, recall 1/2 -> f1 2/3; pos: precision 1/2, recall 1/2 -> f1 1/2; "maybe" is never true:
    # it is paid for by the recall of pos, and not averaged in as a zero of its own
    labels = ("neg", "neg", "pos", "pos")
    predicted = ("neg", "pos", "pos", "maybe")
    assert metric_value(labels, predicted, "macro_f1") == pytest.approx((2 / 3 + 0.5) / 2)
    assert metric_value(labels, predicted, "accuracy") == 0.5
    assert metric_value((), (), "macro_f1") == 0.0


def test_each_resample_row_is_scored_on_its_own() -> None:
    labels, predicted = ("a", "a", "b", "c"), ("a", "b", "b", "a")
    classes, (true, guess) = encode_labels(labels, predicted)
    picks = np.array([[0, 1, 2, 3], [0, 0, 2, 2], [1, 3, 1, 3]])
    batched = batched_metric(true[picks], guess[picks], len(classes), "macro_f1")
    one_by_one = [
        metric_value([labels[i] for i in row], [predicted[i] for i in row], "macro_f1") for row in picks.tolist()
    ]
    assert batched.tolist() == pytest.approx(one_by_one)
    assert batched.tolist() == pytest.approx([(1 / 2 + 2 / 3 + 0) / 3, 1.0, 0.0])


def test_text_metrics_score_answers_against_references_on_the_label_scale() -> None:
    references = ["a metal pot for boiling water", "a spoon with a long handle"]
    assert metric_value(references, references, "chrf") == pytest.approx(1.0)
    assert metric_value(references, references, "bleu") == pytest.approx(1.0)
    assert 0.0 < metric_value(references, ["a pot for boiling", "a long spoon"], "chrf") < 1.0
