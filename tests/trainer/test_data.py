from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from tests.trainer.conftest import make_rows, settings_for
from trainer.data import Row, rows_from_columns, select_rows
from trainer.dedup import near_duplicates
from trainer.errors import BadTrainingData

BASE = Path("unused")


def test_replay_is_class_balanced_and_spread_over_episodes() -> None:
    history = make_rows(("alpha",), 200, 0) + make_rows(("beta",), 30, 0) + make_rows(("alpha", "beta"), 30, 1)
    window = make_rows(("gamma",), 20, 2)
    data = select_rows(window, history, settings_for(BASE, replay_size=100, dedup_threshold=1.0))
    replayed = [row for row in (*data.train, *data.validation) if row.episode < 2]
    assert data.replay_rows == 100
    assert Counter(row.label for row in replayed) == {"alpha": 50, "beta": 50}
    alpha_episodes = Counter(row.episode for row in replayed if row.label == "alpha")
    assert alpha_episodes == {0: 25, 1: 25}


def test_replay_takes_everything_from_a_small_history() -> None:
    history = make_rows(("alpha", "beta"), 5, 0)
    data = select_rows(make_rows(("gamma",), 10, 1), history, settings_for(BASE, replay_size=1000, dedup_threshold=1.0))
    assert data.replay_rows == 10


def test_validation_comes_from_training_rows_per_class_and_holdout_stays_apart() -> None:
    window = make_rows(("alpha", "beta"), 200, 1) + make_rows(("alpha", "beta"), 5, 1, "holdout")
    history = make_rows(("alpha", "beta"), 200, 0) + make_rows(("alpha", "beta"), 5, 0, "holdout")
    data = select_rows(window, history, settings_for(BASE, validation_fraction=0.25, dedup_threshold=1.0))
    assert {row.split for row in (*data.train, *data.validation)} == {"train"}
    validated = Counter(row.label for row in data.validation)
    selected = Counter(row.label for row in (*data.train, *data.validation))
    assert all(0.18 <= validated[label] / selected[label] <= 0.32 for label in ("alpha", "beta")), validated
    assert not {row.id for row in data.train} & {row.id for row in data.validation}
    assert {episode: len(rows) for episode, rows in data.holdout_by_episode().items()} == {0: 10, 1: 10}
    assert data.labels == ("alpha", "beta")


def test_a_row_that_validated_one_run_is_never_trained_on_by_a_later_run() -> None:
    first_window = make_rows(("alpha", "beta"), 60, 0)
    second_window = make_rows(("alpha", "beta"), 60, 1)
    settings = settings_for(BASE, validation_fraction=0.2, dedup_threshold=1.0, replay_size=1000)
    first = select_rows(first_window, [], settings)
    second = select_rows(second_window, first_window, settings.model_copy(update={"seed": 99}))
    validated_first = {row.id for row in first.validation}
    assert validated_first <= {row.id for row in second.validation}
    assert not validated_first & {row.id for row in second.train}


def test_a_class_of_two_rows_gives_one_to_each_split() -> None:
    rows = make_rows(("alpha",), 2, 0) + make_rows(("beta",), 40, 0)
    data = select_rows(rows, [], settings_for(BASE, validation_fraction=0.1, dedup_threshold=1.0))
    assert Counter(row.label for row in data.validation)["alpha"] == 1
    assert Counter(row.label for row in data.train)["alpha"] == 1


def test_near_duplicates_are_dropped_newest_first_and_so_are_copies_of_holdout_texts() -> None:
    base = "the quick brown fox jumps over the lazy dog near the river bank today"
    window = [
        Row("old", base, "alpha", 1),
        Row("new", base + "!", "beta", 1),
        Row("other", "completely different words about health news and ebola", "alpha", 1),
        Row("other2", "sentiment of movie reviews is mostly positive this week", "beta", 1),
        Row("leak", "a sentence that is also in the holdout set of texts", "beta", 1),
        Row("h", "a sentence that is also in the holdout set of texts.", "beta", 1, "holdout"),
    ]
    data = select_rows(window, [], settings_for(BASE, validation_fraction=0.2))
    kept = {row.id for row in (*data.train, *data.validation)}
    assert kept == {"new", "other", "other2"}
    assert data.duplicates_dropped == 2


def test_near_duplicate_threshold() -> None:
    texts = ["abcdefghij klmnop", "abcdefghij klmnoq", "zzzz yyyy xxxx"]
    assert near_duplicates(texts, 0.5) == [False, True, False]
    assert near_duplicates(texts, 0.99) == [False, False, False]


def test_an_empty_window_is_refused_with_the_fix() -> None:
    with pytest.raises(BadTrainingData, match="no training rows"):
        select_rows([], make_rows(("alpha",), 5, 0), settings_for(BASE))


def test_rows_from_columns() -> None:
    rows = rows_from_columns({"id": ["1"], "text": ["t"], "label": ["a"], "episode": [3], "split": ["holdout"]})
    assert rows == [Row("1", "t", "a", 3, "holdout")]
    with pytest.raises(BadTrainingData, match="missing"):
        rows_from_columns({"id": ["1"]})


def test_replayed_rows_outnumbering_the_window_weigh_less_so_the_window_carries_its_share() -> None:
    history = make_rows(("alpha", "beta"), 150, 0)
    window = make_rows(("alpha", "beta"), 50, 1)
    data = select_rows(window, history, settings_for(BASE, new_window_share=0.5, replay_size=300, dedup_threshold=1.0))
    new = [w for row, w in zip(data.train, data.train_weights, strict=True) if row.episode == 1]
    old = [w for row, w in zip(data.train, data.train_weights, strict=True) if row.episode == 0]
    assert len(set(new)) == 1
    assert len(set(old)) == 1
    assert new[0] > 1 > old[0]
    assert sum(new) == pytest.approx(sum(old))
    assert sum(data.train_weights) == pytest.approx(len(data.train))


@pytest.mark.parametrize(("share", "history_rows"), [(0.0, 150), (0.5, 20), (0.5, 0)])
def test_rows_weigh_alike_without_a_share_or_when_the_window_already_carries_it(share: float, history_rows: int
                                                                                ) -> None:  # fmt: skip
    history = make_rows(("alpha", "beta"), history_rows, 0)
    data = select_rows(make_rows(("alpha", "beta"), 50, 1), history,
                       settings_for(BASE, new_window_share=share, replay_size=300, dedup_threshold=1.0))  # fmt: skip
    assert set(data.train_weights) == {1.0}
