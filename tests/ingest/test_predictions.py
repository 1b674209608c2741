"""The prediction event's shape and the prediction id, as the service publishes them."""

from __future__ import annotations

import json
import uuid

import pytest
from pydantic import ValidationError

from ingest.predictions import (
    FIELDS,
    ServedPrediction,
    event_record,
    logged_answer,
    new_prediction_id,
    prediction_value,
)
from ingest.settings import KafkaSettings

SERVED = ServedPrediction(
    prediction_id=new_prediction_id(1_764_495_000_000),
    text="Ebola  outbreak spreads",
    label="bbc",
    scores={"cnn": 0.25, "bbc": 0.5, "reuters": 0.05, "nyt": 0.05, "ap": 0.15},
    model_version="v3-p7",
    ts_ms=1_764_495_000_123,
)


def test_ids_are_unique_printable_uuid7_ordered_by_their_millisecond() -> None:
    ids = [new_prediction_id(1_764_495_000_000 + i // 100) for i in range(10_000)]
    assert len(set(ids)) == len(ids)
    parsed = [uuid.UUID(prediction_id) for prediction_id in ids]
    assert {(value.version, value.variant) for value in parsed} == {(7, uuid.RFC_4122)}
    assert [value.int >> 80 for value in parsed] == [1_764_495_000_000 + i // 100 for i in range(10_000)]
    assert all(prediction_id.isprintable() and len(prediction_id) == 36 for prediction_id in ids)


def test_the_event_holds_the_prediction_its_confidence_and_the_top_k() -> None:
    record = event_record(SERVED, top_k=3)
    assert tuple(record) == FIELDS
    assert record == {
        "prediction_id": SERVED.prediction_id,
        "text": "Ebola  outbreak spreads",
        "prediction": "bbc",
        "confidence": 0.5,
        "top": {"bbc": 0.5, "cnn": 0.25, "ap": 0.15},
        "model_version": "v3-p7",
        "ts": 1_764_495_000_123,
        "text_chars": 23,
    }
    assert list(record["top"]) == ["bbc", "cnn", "ap"], "most probable first"
    assert list(event_record(SERVED, top_k=5)["top"])[3:] == ["nyt", "reuters"], "ties by label"
    assert json.loads(prediction_value(SERVED, top_k=3)) == record


def test_an_answer_is_logged_printable_within_the_label_limit_and_without_probabilities() -> None:
    assert logged_answer(" A pot\n\nfor\tboiling\x1b[0m water\x7f.\n", max_chars=100) == "A pot for boiling[0m water."
    assert logged_answer("kettle " * 10, max_chars=10) == "kettle ket"
    assert logged_answer("kettle " * 10, max_chars=7) == "kettle", "no trailing space where the cut falls"
    answer = ServedPrediction(SERVED.prediction_id, "Define the noun: kettle", "a pot", {}, "v2-p2", SERVED.ts_ms)
    record = event_record(answer, top_k=3)
    assert (record["prediction"], record["confidence"], record["top"]) == ("a pot", None, {})


def test_the_prediction_topic_is_not_the_feedback_topic() -> None:
    with pytest.raises(ValidationError, match="predictions_topic is the feedback topic .'shared'.: every prediction"):
        KafkaSettings(topic="shared", predictions_topic="shared")
