from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.store_growth import fill_to, main
from ingest.settings import IngestSettings
from ingest.store import FeedbackStore


def test_filling_numbers_rows_after_the_stored_ones(tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "feedback.duckdb", IngestSettings()) as store:
        fill_to(store, 30)
        fill_to(store, 100)
        fill_to(store, 50)  # already larger: nothing happens
        row = store.con.execute("SELECT count(*), count(DISTINCT row_id), min(row_id), max(row_id) FROM feedback")
        assert row.fetchone() == (100, 100, 1, 100)


def test_every_size_gets_a_time_and_a_ratio_to_the_smallest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sizes", "2000", "0", "--batch", "20", "--repeats", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert list(summary["ms_per_batch"]) == ["0", "2000"]
    assert summary["ratio_to_smallest"]["0"] == 1.0
    assert summary["ms_per_batch"]["2000"] > 0
