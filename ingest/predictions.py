"""The prediction event: what the service publishes to `kafka.predictions_topic` for every prediction it serves.

One UTF-8 JSON object per Kafka record, keyed by its `prediction_id`:

| field | type | what |
|---|---|---|
| `prediction_id` | string | the id `/predict` returned with the prediction (a UUIDv7: unique, time-ordered) |
| `text` | string | the text as the service received it |
| `prediction` | string | the predicted label |
| `confidence` | number | the probability of the predicted label |
| `top` | object | the `registry.prediction_log_top_k` most probable labels → their probability, most probable first |
| `model_version` | string | the production version that predicted it |
| `ts` | integer | when it was predicted, epoch milliseconds (the feedback record's `ts` rule) |
| `text_chars` | integer | characters of `text` |

Ingesting it comes next: a table `ingest` owns, filled from this topic by the same exactly-once machinery as
feedback (rows and offsets in one transaction), with a check written against `FIELDS` as `records.CHECK_SQL` is
against the feedback record. Until then only the service writes these values.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest.producer import encode_record

FIELDS = ("prediction_id", "text", "prediction", "confidence", "top", "model_version", "ts", "text_chars")


@dataclass(frozen=True, slots=True)
class ServedPrediction:
    """One prediction as served, before it is encoded (the service queues these; encoding happens off the request)."""

    prediction_id: str
    text: str
    label: str
    scores: Mapping[str, float]  # probability per label
    model_version: str
    ts_ms: int


def new_prediction_id(now_ms: int | None = None) -> str:
    """A UUIDv7 (RFC 9562): 48 bits of epoch milliseconds, then 74 random bits, so ids sort by time to the ms."""
    ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    random = int.from_bytes(os.urandom(10), "big")  # 80 bits; 6 of them give way to the version and variant
    value = ((ms & ((1 << 48) - 1)) << 80) | random
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # variant: RFC 9562
    return str(uuid.UUID(int=value))


def event_record(prediction: ServedPrediction, top_k: int) -> dict[str, Any]:
    """The event as a JSON-ready dict, fields in `FIELDS` order."""
    ranked = sorted(prediction.scores.items(), key=lambda item: (-item[1], item[0]))[:top_k]
    return {
        "prediction_id": prediction.prediction_id,
        "text": prediction.text,
        "prediction": prediction.label,
        "confidence": float(prediction.scores[prediction.label]),
        "top": {label: float(probability) for label, probability in ranked},
        "model_version": prediction.model_version,
        "ts": prediction.ts_ms,
        "text_chars": len(prediction.text),
    }


def prediction_value(prediction: ServedPrediction, top_k: int) -> bytes:
    """The Kafka value of one prediction event, encoded as feedback records are."""
    return encode_record(event_record(prediction, top_k))
