"""The demo's feedback file: real health-news tweets with one bad record of every kind mixed in."""

from __future__ import annotations

import json
from pathlib import Path

from ingest.datasets import health_tweets

BAD_RECORDS: list[bytes] = [
    b"this is not json",
    b"\xff\xfe not utf-8",
    b'["an", "array"]',
    b'{"text": "no id here", "label": "cnnhealth"}',
    b'{"id": 12, "text": "a number as id", "label": "cnnhealth"}',
    b'{"id": "demo-empty", "text": "   ", "label": "cnnhealth"}',
    b'{"id": "demo-long", "text": "' + b"x" * 30_000 + b'", "label": "cnnhealth"}',
    b'{"id": "demo-ts", "text": "bad time", "label": "cnnhealth", "ts": "yesterday"}',
    b'{"id": "demo-meta", "text": "meta must be an object", "label": "cnnhealth", "meta": "x"}',
]


def write_demo_feedback(path: Path, records: int) -> tuple[int, int]:
    """Write `records` tweets (the oldest ones) with the bad records and one repeated id spread among them."""
    tweets = [tweet.as_record() for tweet in health_tweets()[:records]]
    lines = [json.dumps(record).encode() for record in tweets]
    bad = [*BAD_RECORDS, lines[0]]  # the repeat of the first tweet is rejected as a duplicate id
    step = max(len(lines) // (len(bad) + 1), 1)
    for index, record in enumerate(bad):
        lines.insert((index + 1) * step + index, record)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return len(tweets), len(bad)
