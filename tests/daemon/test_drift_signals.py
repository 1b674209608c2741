"""Every drift signal the daemon feeds on the feedback stream raises an event through the daemon's own path:
records written by the store's write path, the drift job reading them back. (Feedback rows carry no model
numbers: `confidence` is fed on the served stream, tests/daemon/test_served_drift.py; `distance` nowhere yet.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from daemon.loop.jobs import check_drift
from daemon.loop.store import ensure_schemas
from drift.events import DriftEvent
from drift.rows import FeedbackRows
from drift.settings import DriftSettings
from drift.signals import NAMES
from drift.synthetic import Kind, synthetic_stream
from ingest.records import incoming_table
from ingest.settings import IngestSettings
from ingest.store import FeedbackStore
from tests.ingest.store_helpers import feedback_values

ROWS, SHIFT, BATCH = 6_000, 3_000, 500
FED = ("error", "unseen", "length", "label_mix", "ngram")
STREAMS: dict[str, Kind] = {"error": "abrupt", "length": "length", "label_mix": "label_mix"}


def stream(signal: str) -> FeedbackRows:
    """A stream whose rows from SHIFT on change in what `signal` watches."""
    if signal in STREAMS:
        return synthetic_stream(STREAMS[signal], ROWS, (SHIFT,), seed=5).rows
    rows = synthetic_stream("stationary", ROWS, seed=5).rows
    before = rows.text.to_pylist()[:SHIFT]
    rng = np.random.default_rng(5)
    if signal == "unseen":  # words the reference never saw (q, x and y are in no reference word)
        after = [" ".join(f"q{'xy'[i % 2]}{rng.integers(1_000)}" for i in range(8)) for _ in range(ROWS - SHIFT)]
    else:  # ngram: the reference's own ten most common words, so no word is new
        common = [word for word, _ in sorted(_word_counts(before).items(), key=lambda item: -item[1])[:10]]
        after = [" ".join(rng.choice(common, 8)) for _ in range(ROWS - SHIFT)]
    return FeedbackRows(rows.row_id, pa.array(before + after, pa.string()), rows.label, rows.prediction)


def _word_counts(texts: list[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for text in texts:
        for word in text.split():
            counts[word] = counts.get(word, 0) + 1
    return counts


def feed(store: FeedbackStore, rows: FeedbackRows) -> list[DriftEvent]:
    """Write the rows batch by batch as ingest does, running the drift job after each batch."""
    events: list[DriftEvent] = []
    values = feedback_values(rows)
    for start in range(0, len(values), BATCH):
        batch = values[start : start + BATCH]
        offsets = list(range(start, start + len(batch)))
        store.write_batch(incoming_table(batch, "t", offsets=offsets), {("t", 0): start + len(batch)})
        events += check_drift(store.con, DriftSettings(stream="feedback")).events
    return events


def test_the_fed_signals_are_every_signal_but_the_model_numbers() -> None:
    assert set(NAMES) - set(FED) == {"confidence", "distance", "edit"}  # edit: answers only (tests/drift)


@pytest.mark.parametrize("signal", FED)
def test_a_shift_in_what_a_signal_watches_raises_its_event(signal: str, tmp_path: Path) -> None:
    with FeedbackStore(tmp_path / "driftloop.duckdb", IngestSettings()) as store:
        ensure_schemas(store.con)
        events = feed(store, stream(signal))

    assert events, f"no drift event for a shift in {signal}"
    first = events[0]
    assert SHIFT < first.row_id <= SHIFT + 1_500, f"the first event came at row {first.row_id}"
    assert signal in first.signals, f"the event's signals are {first.signals}"
