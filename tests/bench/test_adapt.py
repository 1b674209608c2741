from __future__ import annotations

from bench.adapt import difference_interval
from trainer.results import EpisodePredictions


def predictions(predicted: str, labels: str = "aaaaabbbbbaaaaabbbbb") -> EpisodePredictions:
    return EpisodePredictions(tuple(str(i) for i in range(len(labels))), tuple(labels), tuple(predicted), None)


def test_the_difference_interval_brackets_the_macro_f1_difference_of_two_models_on_the_same_rows() -> None:
    right = predictions("aaaaabbbbbaaaaabbbbb")
    two_wrong = predictions("aaaabbbbbbaaaaabbbba")  # 18 of 20 right, one error per class: macro-F1 0.9

    low, point, high = difference_interval(right, two_wrong)

    assert point == 10.0
    assert 0.0 <= low < point < high < 40.0  # a resample may draw the two errors many times
    assert difference_interval(two_wrong, right) == [-high, -point, -low]
    assert difference_interval(right, right) == [0.0, 0.0, 0.0]
