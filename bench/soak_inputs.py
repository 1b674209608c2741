"""What the soak sends: good records whose vocabulary shifts period by period, and every kind of bad record the
docs list (docs/feedback.md, "Bad input"), each made fresh for its sequence number.

The soak runs with `SOAK_INGEST` (small text and record limits, so the over-limit kinds stay small messages).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.daemon.loop_helpers import LABELS, text

SOAK_INGEST = {"INGEST_MAX_TEXT_CHARS": "1000", "INGEST_MAX_RECORD_BYTES": "4096"}
YEAR_2103_MS = 4_200_000_000_000  # a Kafka CreateTime past the accepted 1970-2100


@dataclass(frozen=True)
class Outgoing:
    """One Kafka record to send: its value (None: a tombstone), a CreateTime when the record needs its own, and a
    key when it must share a partition with another record (a duplicate comes after its first)."""

    kind: str  # "good" or the bad kind
    value: bytes | None
    timestamp_ms: int | None = None
    key: bytes | None = None


def _json(record: Any) -> bytes:
    return json.dumps(record).encode()


def _record(n: int, **fields: Any) -> bytes:
    """A good record of bad kind number `n`'s sequence, with `fields` replacing (None: removing) its fields."""
    record: dict[str, Any] = {"id": f"bad-{n}", "text": f"bad record {n}", "label": "alpha"}
    record.update(fields)
    return _json({key: value for key, value in record.items() if value is not None})


BAD_KINDS: dict[str, Callable[[int], bytes | None]] = {
    "not UTF-8": lambda n: b"\xc3\x28 broken %d" % n,
    "not JSON": lambda n: b"plain words %d" % n,
    "empty value": lambda n: b"",
    "tombstone": lambda n: None,
    "JSON array": lambda n: b"[1, 2, %d]" % n,
    "JSON string": lambda n: _json(f"text {n}"),
    "deeply nested JSON": lambda n: b"[" * 2_000 + b"]" * 2_000,
    "no id": lambda n: _record(n, id=None),
    "no text": lambda n: _record(n, text=None),
    "no label": lambda n: _record(n, label=None),
    "id a number": lambda n: _record(n, id=n),
    "text a number": lambda n: _record(n, text=n),
    "label a list": lambda n: _record(n, label=["alpha"]),
    "prediction a number": lambda n: _record(n, prediction=3),
    "model_version a boolean": lambda n: _record(n, model_version=True),
    "ts a boolean": lambda n: _record(n, ts=True),
    "ts not a time": lambda n: _record(n, ts="last tuesday"),
    "ts in epoch nanoseconds": lambda n: _record(n, ts=1_732_900_000_000_000_000),
    "ts 1e300": lambda n: _record(n, ts=1e300),
    "ts after 2100": lambda n: _record(n, ts="9999-01-01T00:00:00Z"),
    "Kafka timestamp after 2100": lambda n: _record(n),  # sent with the CreateTime of KAFKA_TIMESTAMPS
    "meta a list": lambda n: _record(n, meta=[1, 2]),
    "empty id": lambda n: _record(n, id=""),
    "id too long": lambda n: _record(n, id="i" * 201),
    "id with a newline": lambda n: _record(n, id=f"bad\n{n}"),
    "id with NUL": lambda n: _record(n, id=f"bad\x00{n}"),
    "label with an escape sequence": lambda n: _record(n, label="\x1b[31malpha"),
    "prediction with a control character": lambda n: _record(n, prediction="al\x07pha"),
    "text of whitespace": lambda n: _record(n, text=" \t\n "),
    "text too long": lambda n: _record(n, text="x " * 700),
    "empty label": lambda n: _record(n, label="  "),
    "label too long": lambda n: _record(n, label="l" * 101),
    "value too large": lambda n: _record(n, meta={"pad": "p" * 5_000}),
    "NaN in JSON": lambda n: b'{"id": "bad-%d", "text": "t", "label": "alpha", "ts": NaN}' % n,
    "duplicate id": lambda n: _record(0),  # bad-0 is sent first of all, as a good record
}
KAFKA_TIMESTAMPS = {"Kafka timestamp after 2100": YEAR_2103_MS}
FIRST_KEY = b"bad-0"  # the first record and its duplicates: one partition, so Kafka keeps their order
KEYS = {"tombstone": b"tombstone", "duplicate id": FIRST_KEY}  # Kafka takes no record without a key or a value


def first_record() -> Outgoing:
    """The good record whose id every "duplicate id" record repeats; sent before anything else."""
    return Outgoing("good", _record(0), key=FIRST_KEY)


def bad_record(kind: str, n: int) -> Outgoing:
    return Outgoing(kind, BAD_KINDS[kind](n), KAFKA_TIMESTAMPS.get(kind), KEYS.get(kind))


def good_record(n: int, period: int, rng: random.Random) -> Outgoing:
    """A labelled record of `period`'s vocabulary with a served prediction: right before the first shift, wrong
    half of the time after it (as a model trained on the old vocabulary would be)."""
    label = LABELS[n % len(LABELS)]
    prediction = label if period == 0 or rng.random() < 0.5 else LABELS[1 - n % len(LABELS)]
    record = {"id": f"good-{n}", "text": text(label, period % 2, rng), "label": label, "prediction": prediction}
    return Outgoing("good", _json(record))
