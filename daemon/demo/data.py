"""The demo's files: health-news tweets of early 2013 (what version 1 learns) and of late 2014 (the shift:
new topics, new outlets), as bootstrap, stream and evaluation sets that never share a tweet."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, TypeVar

from ingest.datasets import health_tweets

T = TypeVar("T")
OLD_PERIOD = ("2013Q1", "2013Q2")
NEW_PERIOD = ("2014Q3", "2014Q4")
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


@dataclass(frozen=True)
class DemoSizes:
    bootstrap: int = 3_000
    reference: int = 800
    shifted: int = 1_800
    after: int = 600
    evaluation: int = 500


class DemoFiles(NamedTuple):
    bootstrap: Path
    reference: Path
    shifted: Path
    after: Path
    eval_old: Path
    eval_new: Path
    bad: Path


def write_demo_files(folder: Path, sizes: DemoSizes, seed: int = 0) -> DemoFiles:
    """Sample each period without overlap, every file in time order (`after.jsonl`: late-2014 tweets streamed
    once the new model serves), plus `bad.jsonl`: one bad record of every
    kind and a repeated id, which the daemon rejects with their reasons."""
    tweets = health_tweets()
    rng = random.Random(seed)
    old = [t for t in tweets if t.group in OLD_PERIOD]
    new = [t for t in tweets if t.group in NEW_PERIOD]
    bootstrap, reference, eval_old = disjoint_samples(old, (sizes.bootstrap, sizes.reference, sizes.evaluation), rng)
    shifted, after, eval_new = disjoint_samples(new, (sizes.shifted, sizes.after, sizes.evaluation), rng)
    names = ("bootstrap", "reference", "shifted", "after", "eval-old", "eval-new", "bad")
    files = DemoFiles(*(folder / f"{name}.jsonl" for name in names))
    for path, part in zip(files[:6], (bootstrap, reference, shifted, after, eval_old, eval_new), strict=True):
        path.write_text("".join(json.dumps(tweet.as_record()) + "\n" for tweet in part), encoding="utf-8")
    repeated = json.dumps(shifted[0].as_record()).encode()  # rejected as a duplicate id
    files.bad.write_bytes(b"\n".join([*BAD_RECORDS, repeated]) + b"\n")
    return files


def disjoint_samples(pool: Sequence[T], sizes: Sequence[int], rng: random.Random) -> list[list[T]]:
    """Disjoint random samples of the given sizes, each spanning the whole pool, each in the pool's order (tweets:
    time order)."""
    chosen = rng.sample(range(len(pool)), sum(sizes))
    parts, start = [], 0
    for size in sizes:
        parts.append([pool[i] for i in sorted(chosen[start : start + size])])
        start += size
    return parts
