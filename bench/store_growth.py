"""Does ingest slow down as the feedback table grows? One store write at several table sizes, same run.

Every batch is checked against every stored id (duplicates) and numbered after the largest stored row id, so a
store that weeks of feedback have filled could make each write slower. This fills a DuckDB file with synthetic
stored rows in steps and, at each size, times `FeedbackStore.write_batch` on fresh batches of real health-news
tweets (median over `--repeats`); the baseline is the same write on the empty store, measured first. The last
line is one JSON object: per size, the median milliseconds per batch and the ratio against the empty store.

    .venv/bin/python bench/store_growth.py [--sizes 0 1000000 5000000 10000000] [--batch 500] [--repeats 9]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ingest.datasets import health_tweets  # noqa: E402
from ingest.records import incoming_table  # noqa: E402
from ingest.settings import IngestSettings  # noqa: E402
from ingest.store import FeedbackStore  # noqa: E402

TOPIC = "bench"
FILL_SQL = """
INSERT INTO feedback BY NAME
SELECT $first + i AS row_id, 'stored-' || ($first + i) AS id,
    'a stored correction of some length, number ' || i AS text,
    'label-' || (i % 16) AS label, now() AS ts, 'label' AS kind,
    CASE WHEN i % 10 = 0 THEN 'holdout' ELSE 'train' END AS split, 0 AS episode, md5(i::VARCHAR) AS text_hash,
    'stored' AS topic, 0 AS partition, $first + i AS "offset", now() AS ingested_at
FROM range(0, $count) AS r(i)
"""


def fill_to(store: FeedbackStore, size: int) -> None:
    ((have,),) = store.con.execute("SELECT count(*) FROM feedback").fetchall()
    if size > have:
        store.con.execute(FILL_SQL, {"first": have + 1, "count": size - have})
        store.con.execute("CHECKPOINT")


def timed_write(store: FeedbackStore, records: list[bytes], first_offset: int) -> float:
    offsets = list(range(first_offset, first_offset + len(records)))
    table = incoming_table(records, TOPIC, [0] * len(records), offsets, [1_700_000_000_000] * len(records))
    started = time.perf_counter()
    result = store.write_batch(table, {(TOPIC, 0): first_offset + len(records)})
    elapsed = time.perf_counter() - started
    assert result.stored == len(records), f"expected every record stored, got {result}"
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[0, 1_000_000, 5_000_000, 10_000_000], help="stored rows"
    )
    parser.add_argument(
        "--batch", type=int, default=500, help="records per write (one poll's worth; at most ingest.batch_max_records)"
    )
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args(argv)
    tweets = itertools.cycle(health_tweets())
    serial = itertools.count()

    def batch() -> list[bytes]:
        return [
            json.dumps({"id": f"new-{next(serial)}", "text": tweet.text, "label": tweet.label}).encode()
            for tweet in itertools.islice(tweets, args.batch)
        ]

    results: dict[int, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="driftloop-store-growth-") as scratch,
        FeedbackStore(Path(scratch) / "feedback.duckdb", IngestSettings()) as store,
    ):
        offset = 0
        for size in sorted(args.sizes):
            fill_to(store, size)
            times = []
            for _ in range(args.repeats):
                times.append(timed_write(store, batch(), offset))
                offset += args.batch
            results[size] = 1000 * statistics.median(times)
            print(f"{size:>10,} stored rows: {results[size]:7.1f} ms per batch of {args.batch}", flush=True)
    baseline = results[min(results)]
    summary = {
        "batch": args.batch,
        "repeats": args.repeats,
        "ms_per_batch": {str(size): round(ms, 1) for size, ms in results.items()},
        "ratio_to_smallest": {str(size): round(ms / baseline, 2) for size, ms in results.items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
