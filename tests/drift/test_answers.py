"""drift.output=answers: a generation model's stream, where the label is the corrected answer."""

from __future__ import annotations

import doctest
import random

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import drift.edits
from drift.edits import answer_edits, levenshtein
from drift.monitor import DriftMonitor
from drift.rows import FeedbackRows
from drift.settings import DriftSettings
from drift.signals import watches
from drift.synthetic import REWRITTEN, synthetic_stream
from tests.drift.conftest import run

ANSWERS = DriftSettings(output="answers")


def test_corrections_that_rewrite_more_of_each_answer_raise_one_edit_event() -> None:
    rows = served(synthetic_stream("answers", 20_000, (8_000,), seed=0).rows)

    events = run(rows, ANSWERS)

    assert [event.signals for event in events] == [("edit",)]
    (event,) = events
    assert 8_000 < event.row_id <= 8_500
    readings = {reading.name: reading for reading in event.readings}
    assert readings["edit"].beyond
    assert readings["edit"].exceeded_checks >= ANSWERS.confirm_n
    assert readings["edit"].detector_alarm
    assert readings["edit"].reference == pytest.approx(0.1 * REWRITTEN[0], abs=0.01)
    assert not readings["error"].beyond  # as many answers corrected as before: only how much of each moved
    assert readings["label_mix"].value is None
    assert readings["confidence"].value is None
    assert not readings["confidence"].beyond
    assert run(rows, ANSWERS, batch_rows=777) == events


def served(rows: FeedbackRows) -> FeedbackRows:
    """The rows as ingest.prediction_log.read_served gives them for a generation model: no confidence."""
    corrected = pc.not_equal(rows.prediction, rows.label)
    table = pa.table(
        {
            "row_id": rows.row_id,
            "text": rows.text,
            "label": rows.label,
            "prediction": rows.prediction,
            "confidence": pa.nulls(len(rows), pa.float64()),
            "labelled_by": pc.if_else(corrected, "correction", pa.scalar(None, pa.string())),
        }
    )
    return FeedbackRows.from_arrow(table)


def test_a_steady_answer_stream_raises_nothing_and_keeps_no_answer_in_the_state() -> None:
    rows = synthetic_stream("answers", 60_000, seed=1).rows
    monitor = DriftMonitor(ANSWERS)

    events = [
        event for start in range(0, 60_000, 10_000) for event in monitor.update(rows.slice(start, start + 10_000))
    ]

    assert events == []
    readings = {reading.name: reading for reading in monitor.status().readings}
    assert readings["edit"].value is not None
    assert readings["error"].value is not None
    assert readings["ngram"].value is not None
    assert readings["label_mix"].value is None  # every answer is its own label: never judged
    assert readings["confidence"].value is None  # a generated answer carries no confidence
    assert monitor.state.label_codes == {}  # labels are not coded, so the saved state does not grow per answer


def test_with_labels_the_edit_signal_is_not_fed_and_label_mix_is() -> None:
    rows = synthetic_stream("label_mix", 20_000, (8_000,), seed=0).rows

    events = run(rows)

    assert [event.signals for event in events] == [("label_mix",)]
    edit = next(reading for reading in events[0].readings if reading.name == "edit")
    assert (edit.value, edit.reference, edit.beyond) == (None, None, False)


def test_edits_are_the_share_of_the_longer_answer_rewritten() -> None:
    predictions = ["a b c d", "a b c d", "a b", "a b", "", "same", None]
    labels = ["a b c d", "a x c d", "a b c d", "x y", "new words", "same ", "z"]

    edits = answer_edits(pa.array(predictions, pa.string()), pa.array(labels, pa.string()))

    assert np.array_equal(edits, [0.0, 0.25, 0.5, 1.0, 1.0, 0.0, np.nan], equal_nan=True)
    assert doctest.testmod(drift.edits).failed == 0


def test_levenshtein_agrees_with_the_textbook_table() -> None:
    rng = random.Random(0)
    for _ in range(2_000):
        first = rng.choices("abcd", k=rng.randint(0, 80))
        second = rng.choices("abcd", k=rng.randint(0, 80))
        assert levenshtein(first, second) == _table(first, second), (first, second)


def _table(first: list[str], second: list[str]) -> int:
    previous = list(range(len(second) + 1))
    for i, word in enumerate(first, 1):
        current = [i]
        for j, other in enumerate(second, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (word != other)))
        previous = current
    return previous[-1]


@pytest.mark.parametrize("stream", ["served", "feedback"])
def test_what_each_signal_watches_follows_the_output(stream: str) -> None:
    labels, answers = watches(stream), watches(stream, "answers")

    assert labels["edit"].startswith("not evaluated")
    assert answers["label_mix"].startswith("not evaluated")
    assert not answers["edit"].startswith("not")
    assert "prompt" in answers["length"]
    assert set(labels) == set(answers)
