from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench import store_growth
from bench.store_growth import fill_to, main
from ingest.settings import IngestSettings
from ingest.store import BatchResult, FeedbackStore


def test_filling_numbers_rows_after_the_stored_ones(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "feedback.duckdb", IngestSettings()) as store:
        fill_to(store, 30)
        fill_to(store, 100)
        fill_to(store, 50)  # already larger: nothing happens
        row = store.con.execute("SELECT count(*), count(DISTINCT row_id), min(row_id), max(row_id) FROM feedback")
        assert row.fetchone() == (100, 100, 1, 100)


def test_each_size_is_filled_before_its_timed_writes_and_gets_its_time_over_the_smallest(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A clock that moves only inside `write_batch`, by 1 ms plus 1 ms per 100 stored rows, makes the printed times
    exact: they show which store size each timed write met and that the timing spans the write."""
    clock = SimpleNamespace(now=0.0)
    writes: list[tuple[int, int]] = []  # stored rows before and after each timed write
    real_write = FeedbackStore.write_batch

    def write_on_the_clock(store: FeedbackStore, *args: Any, **kwargs: Any) -> BatchResult:
        before = stored_rows(store)
        result = real_write(store, *args, **kwargs)
        writes.append((before, stored_rows(store)))
        clock.now += (1 + before / 100) / 1_000
        return result

    monkeypatch.setattr(FeedbackStore, "write_batch", write_on_the_clock)
    monkeypatch.setattr(store_growth, "time", SimpleNamespace(perf_counter=lambda: clock.now))

    assert main(["--sizes", "2000", "0", "--batch", "20", "--repeats", "2"]) == 0

    assert writes == [(0, 20), (20, 40), (2_000, 2_020), (2_020, 2_040)]
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[:2] == [
        "         0 stored rows:     1.1 ms per batch of 20",  # median of 1.0 and 1.2
        "     2,000 stored rows:    21.1 ms per batch of 20",  # median of 21.0 and 21.2
    ]
    summary = json.loads(lines[-1])
    assert summary["ms_per_batch"] == {"0": 1.1, "2000": 21.1}
    assert summary["ratio_to_smallest"] == {"0": 1.0, "2000": round(21.1 / 1.1, 2)}


def stored_rows(store: FeedbackStore) -> int:
    ((count,),) = store.con.execute("SELECT count(*) FROM feedback").fetchall()
    return int(count)
