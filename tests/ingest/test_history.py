"""Reading stored rows back: row ranges, times to rows, episodes, Kafka ranges, served outcomes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from drift.rows import FeedbackRows
from drift.synthetic import synthetic_stream
from ingest import history
from ingest.settings import IngestSettings
from ingest.store import FeedbackStore
from tests.ingest.store_helpers import store_stream


def test_rows_by_id_and_by_time(store_path: Path) -> None:
    rows = synthetic_stream("stationary", 100, seed=2).rows
    with FeedbackStore(store_path, IngestSettings()) as store:
        start = store_stream(store, rows)
        middle = FeedbackRows.from_arrow(history.read_rows(store.con, after_row_id=10, until_row_id=20))
        limited = FeedbackRows.from_arrow(history.read_rows(store.con, after_row_id=95, limit=3))
        at_time = history.row_at(store.con, start + timedelta(minutes=41, seconds=30))
        past_end = history.row_at(store.con, start + timedelta(days=1))
        assert history.row_range(store.con) == (1, 100)
        assert history.rows_since(store.con, 91) == (10, 100)
        assert history.rows_from_topic(store.con, "feedback") == 100

    assert middle.row_id.tolist() == list(range(11, 21))
    assert middle.text.to_pylist() == rows.text[10:20].to_pylist()
    assert middle.prediction.to_pylist() == rows.prediction[10:20].to_pylist()
    assert limited.row_id.tolist() == [96, 97, 98]
    assert (at_time, past_end) == (43, 101)


def test_an_episode_opens_once_and_rows_take_the_newest_episode_before_them(store_path: Path) -> None:
    rows = synthetic_stream("stationary", 30, seed=3).rows
    with FeedbackStore(store_path, IngestSettings()) as store:
        store_stream(store, rows)
        history.open_episode(store.con, 1, 11, "drift event at row 10")
        history.open_episode(store.con, 1, 15, "a retry opens nothing new")
        history.open_episode(store.con, 2, 21, "drift event at row 20")
        episodes = [row.episode for row in history.training_rows(store.con, 25)]
        assert history.episode_starts(store.con) == {1: 11, 2: 21}
        assert (history.current_episode_start(store.con), history.next_episode(store.con)) == (21, 3)
        assert history.kafka_ranges(store.con, 11, 20) == [history.KafkaRange("feedback", 0, 10, 19, 10)]

    assert episodes == [0] * 10 + [1] * 10 + [2] * 5


def test_served_outcomes_and_the_versions_that_served(store_path: Path) -> None:
    rows = FeedbackRows.from_lists(
        [0, 1, 2, 3], ["a b", "c d", "e f", "g h"], ["x", "y", "x", "y"], ["x", "x", None, "y"]
    )
    with FeedbackStore(store_path, IngestSettings()) as store:
        store_stream(store, rows)
        served = history.served_outcomes(store.con)
        spans = history.model_version_spans(store.con)

    assert (served.row_id.tolist(), served.correct.tolist()) == ([1, 2, 4], [True, False, True])
    assert spans == [history.Span(1, 4, "unknown")]
