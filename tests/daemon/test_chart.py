"""The stream chart over a real store: accuracy 0.9 → 0.5 → 0.9 after a promotion, a drift event, a PNG."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pytest

from daemon.errors import DaemonError
from daemon.loop.access import StoreAccess
from daemon.loop.jobs import check_drift
from daemon.loop.store import ensure_schemas
from daemon.reports.chart import chart_data, write_chart
from daemon.settings import Settings
from drift.settings import DriftSettings
from drift.store import stored_events
from drift.synthetic import LABELS, synthetic_stream
from ingest.history import Span
from ingest.records import incoming_table
from ingest.settings import IngestSettings
from ingest.store import FeedbackStore
from ingest.summary import store_summary
from registry.records import Promotion

PHASE = 4_000  # rows per phase: v1 right 90% of the time, v1 right 50%, then v2 (promoted) right 90%
PHASES = (("v1", 0.9), ("v1", 0.5), ("v2", 0.9))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def feedback_values(first: int, rows: int, version: str, accuracy: float, seed: int) -> list[bytes]:
    stream = synthetic_stream("stationary", rows, seed=seed).rows
    rng = np.random.default_rng(seed)
    labels = stream.label.to_pylist()
    wrong = rng.random(rows) >= accuracy
    predictions = [LABELS[(LABELS.index(label) + 1) % len(LABELS)] if miss else label
                   for label, miss in zip(labels, wrong, strict=True)]  # fmt: skip
    return [
        json.dumps(
            {"id": f"r{first + i}", "text": text, "label": label, "prediction": prediction, "model_version": version}
        ).encode()
        for i, (text, label, prediction) in enumerate(zip(stream.text.to_pylist(), labels, predictions, strict=True))
    ]


def write_phase(store: FeedbackStore, phase: int) -> None:
    version, accuracy = PHASES[phase]
    values = feedback_values(phase * PHASE, PHASE, version, accuracy, seed=phase)
    offsets = list(range(phase * PHASE, (phase + 1) * PHASE))
    store.write_batch(incoming_table(values, "t", offsets=offsets), {("t", 0): offsets[-1] + 1})


def open_store(path: Path) -> FeedbackStore:
    store = FeedbackStore(path, IngestSettings())
    ensure_schemas(store.con)
    return store


def promotion(number: int, at: datetime, action: str, version: str, before: str, after: str) -> Promotion:
    return Promotion(number, at, "operator", action, version, before, after, None, False, "hash", None)


@pytest.fixture(scope="module")
def shifted_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[Promotion, ...]]:
    """Three phases through the real write path, drift checked by the daemon's job, v2 promoted before phase 3
    (and v3 rejected: no production change)."""
    path = tmp_path_factory.mktemp("chart") / "driftloop.duckdb"
    with open_store(path) as store:
        write_phase(store, 0)
        write_phase(store, 1)
        check_drift(store.con, DriftSettings(stream="feedback"))
        last = store_summary(store.con, "t", "p").last_ingested_at
        assert last is not None
        promotions = (
            promotion(1, last + timedelta(microseconds=1), "approve", "v2", "v1", "v2"),
            promotion(2, last + timedelta(microseconds=2), "reject", "v3", "v2", "v2"),
        )
        write_phase(store, 2)
    return path, promotions


@pytest.fixture
def shifted(shifted_store: tuple[Path, tuple[Promotion, ...]]) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(str(shifted_store[0]), read_only=True) as con:
        yield con


@pytest.fixture
def promotions(shifted_store: tuple[Path, tuple[Promotion, ...]]) -> tuple[Promotion, ...]:
    return shifted_store[1]


def test_accuracy_follows_the_shift_and_the_promotion(
    shifted: duckdb.DuckDBPyConnection, promotions: tuple[Promotion, ...]
) -> None:
    data = chart_data(shifted, promotions, window=500)
    assert data.rows == len(data.row_id) == 3 * PHASE
    at = dict(zip(data.row_id.tolist(), data.accuracy.tolist(), strict=True))
    for row, expected in ((PHASE, 0.9), (2 * PHASE, 0.5), (3 * PHASE, 0.9)):
        assert at[row] == pytest.approx(expected, abs=0.05)
    assert np.isnan(data.accuracy[: 500 // 5 - 1]).all()
    assert not np.isnan(data.accuracy[500 // 5 - 1 :]).any()
    assert data.versions == (Span(1, 2 * PHASE, "v1"), Span(2 * PHASE + 1, 3 * PHASE, "v2"))
    assert data.promotions == (Span(2 * PHASE, 2 * PHASE, "approve v2"),)


def test_drift_events_are_the_stored_ones(shifted: duckdb.DuckDBPyConnection) -> None:
    stored = sorted(stored_events(shifted), key=lambda event: event.row_id)
    data = chart_data(shifted)
    assert stored
    assert data.drift_events == tuple(Span(e.first_row_id, e.row_id, ", ".join(e.signals)) for e in stored)
    first = data.drift_events[0]
    assert PHASE < first.last_row_id < PHASE + 600
    assert first.first_row_id < first.last_row_id
    assert "error" in first.label


def test_replayed_error_signal_crosses_its_threshold_after_the_shift(
    shifted: duckdb.DuckDBPyConnection, promotions: tuple[Promotion, ...]
) -> None:
    data = chart_data(shifted, promotions)
    error, rows, event = data.signals["error"], data.signal_row_id, data.drift_events[0].last_row_id
    warmup, cooldown = DriftSettings(stream="feedback").warmup_rows, DriftSettings(stream="feedback").cooldown_rows
    assert np.isnan(error[rows <= warmup]).all()
    assert np.nanmax(error[(rows > warmup + 500) & (rows <= PHASE)]) < 1.0
    assert np.nanmin(error[(rows > PHASE + 100) & (rows <= event)]) > 1.0
    assert np.isnan(error[(rows > event) & (rows <= event + cooldown)]).all()  # the replay cools down as the daemon did
    assert "confidence" not in data.signals  # no row carries a confidence: nothing to draw


def test_the_replay_stays_out_of_the_log(shifted: duckdb.DuckDBPyConnection, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="drift"):
        chart_data(shifted)
        assert [record for record in caplog.records if record.name.startswith("drift.")] == []
        logging.getLogger("drift.monitor").warning("a real event")
    assert [record.getMessage() for record in caplog.records] == ["a real event"]


def test_png_is_written(shifted_store: tuple[Path, tuple[Promotion, ...]], tmp_path: Path) -> None:
    with duckdb.connect(str(shifted_store[0]), read_only=True) as con:
        path = write_chart(StoreAccess(con, Settings()), tmp_path / "out" / "stream.png")
    assert path == tmp_path / "out" / "stream.png"
    content = path.read_bytes()
    assert content[:8] == PNG_MAGIC
    assert len(content) > 30_000


def test_chart_without_drift_events_or_promotions(tmp_path: Path) -> None:
    with open_store(tmp_path / "driftloop.duckdb") as store:
        write_phase(store, 0)
        data = chart_data(store.con, window=100)
        assert (data.drift_events, data.promotions) == ((), ())
        assert data.versions == (Span(1, PHASE, "v1"),)
        assert write_chart(StoreAccess(store.con, Settings()), tmp_path / "chart.png").read_bytes()[:8] == PNG_MAGIC


def test_rows_without_predictions_still_chart(tmp_path: Path) -> None:
    values = [json.dumps({"id": f"r{i}", "text": f"text {i}", "label": "a"}).encode() for i in range(50)]
    with open_store(tmp_path / "driftloop.duckdb") as store:
        store.write_batch(incoming_table(values, "t"), {("t", 0): len(values)})
        data = chart_data(store.con)
        assert (data.rows, len(data.row_id), data.versions, dict(data.signals)) == (50, 0, (), {})
        assert write_chart(StoreAccess(store.con, Settings()), tmp_path / "chart.png").stat().st_size > 10_000


def test_empty_store_is_one_clear_error(tmp_path: Path) -> None:
    with open_store(tmp_path / "driftloop.duckdb") as store:
        with pytest.raises(DaemonError, match=r"^the store has no feedback rows to chart; ingest some first"):
            write_chart(StoreAccess(store.con, Settings()), tmp_path / "chart.png")
        with pytest.raises(DaemonError, match="at least 1 row"):
            chart_data(store.con, window=0)
    assert not (tmp_path / "chart.png").exists()
