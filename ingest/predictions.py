"""The prediction event: what the service publishes to `kafka.predictions_topic` for every prediction it serves,
a classifier's label or a generative model's answer.

One UTF-8 JSON object per Kafka record, keyed by its `prediction_id`:

| field | type | what |
|---|---|---|
| `prediction_id` | string | the id `/predict` or `/generate` returned with it (a UUIDv7: unique, time-ordered) |
| `text` | string | the text (or prompt) as the service received it |
| `prediction` | string | the predicted label, or the answer (`logged_answer`) |
| `confidence` | number or null | the probability of the predicted label; null for an answer (`top` is then `{}`) |
| `top` | object | the `registry.prediction_log_top_k` most probable labels → probability, most probable first |
| `model_version` | string | the production version that predicted it |
| `ts` | integer | when it was predicted, epoch milliseconds (the feedback record's `ts` rule) |
| `text_chars` | integer | characters of `text` |

Ingest checks each event with `CHECK_SQL` (as records.CHECK_SQL checks feedback) and keeps the good ones in the
`predictions` table (prediction_log.py), in the transaction that stores the batch's feedback and offsets.
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ingest.check_sql import (
    EMPTY_TEXT,
    NUMBER_TYPES,
    decoded,
    envelope_reasons,
    normalized,
    printable,
    required_string,
    sized,
    ts_reasons,
    ts_value,
    type_name,
)
from ingest.producer import encode_record

CONTROL = re.compile(r"[\x00-\x1f\x7f]")  # what the check's [[:cntrl:]] refuses in a prediction
FIELDS = ("prediction_id", "text", "prediction", "confidence", "top", "model_version", "ts", "text_chars")
PATHS = "['$.prediction_id', '$.text', '$.prediction', '$.confidence', '$.top', '$.model_version', '$.ts']"

# `text_chars` is not read: ingest counts the characters of the text it keeps.
CHECK_SQL = f"""
{decoded(PATHS)}, cleaned AS (
    SELECT *,
        trim(v[1]) AS c_prediction_id,
        {normalized("v[2]")} AS c_text,
        trim(v[3]) AS c_prediction,
        CASE WHEN t[4] IN {NUMBER_TYPES} THEN try_cast(v[4] AS DOUBLE) END AS c_confidence,
        CASE t[5] WHEN 'OBJECT' THEN v[5] END AS c_top,
        trim(v[6]) AS c_model_version,
        {ts_value(7)} AS c_ts
    FROM fields
)
SELECT topic, partition, "offset", raw, arrival,
    c_prediction_id AS prediction_id, c_text AS text, c_prediction AS prediction, c_confidence AS confidence,
    c_top AS top, c_model_version AS model_version, c_ts AS ts,
    CASE
        {envelope_reasons()}
        {required_string(1, "prediction_id")}
        {required_string(2, "text")}
        {required_string(3, "prediction")}
        WHEN t[4] IS NULL THEN 'missing field ''confidence'''
        WHEN t[4] NOT IN {NUMBER_TYPES} AND t[4] <> 'NULL'
            THEN 'field ''confidence'' must be a number or null (got ' || {type_name("t[4]")} || ')'
        WHEN NOT c_confidence BETWEEN 0 AND 1 THEN 'field ''confidence'' is ' || left(v[4], 40)
            || ', not a probability between 0 and 1'
        WHEN t[5] NOT IN ('OBJECT', 'NULL') THEN 'field ''top'' must be an object (got ' || {type_name("t[5]")} || ')'
        {required_string(6, "model_version")}
        {ts_reasons(7)}
        {printable("c_prediction_id", "prediction_id", "ids")}
        {printable("c_prediction", "prediction", "predictions")}
        {sized("c_prediction_id", "prediction_id", "max_id_chars")}
        {sized("c_text", "text", "max_text_chars", EMPTY_TEXT)}
        {sized("c_prediction", "prediction", "max_label_chars")}
        WHEN c_model_version = '' THEN 'field ''model_version'' is empty'
    END AS reason
FROM cleaned
"""


@dataclass(frozen=True, slots=True)
class ServedPrediction:
    """One prediction as served, before it is encoded (the service queues these; encoding happens off the request)."""

    prediction_id: str
    text: str
    label: str
    scores: Mapping[str, float]  # probability per label; empty for a generative model's answer
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
        "confidence": float(prediction.scores[prediction.label]) if prediction.scores else None,
        "top": {label: float(probability) for label, probability in ranked},
        "model_version": prediction.model_version,
        "ts": prediction.ts_ms,
        "text_chars": len(prediction.text),
    }


def logged_answer(answer: str, max_chars: int) -> str:
    """A generated answer as the log keeps it, so that ingest accepts it and feedback can name it by id: a prediction
    must be printable, so whitespace runs (newlines included) become one space and other control characters go, and
    it is cut to `max_chars` (`ingest.max_label_chars`)."""
    return CONTROL.sub("", " ".join(answer.split()))[:max_chars].rstrip()


def prediction_value(prediction: ServedPrediction, top_k: int) -> bytes:
    """The Kafka value of one prediction event, encoded as feedback records are."""
    return encode_record(event_record(prediction, top_k))
