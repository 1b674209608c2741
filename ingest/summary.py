"""What the store holds, for `status`, `feedback stats` and `feedback rejected`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

LABELS_SHOWN = 20


@dataclass(frozen=True)
class PartitionOffset:
    partition: int
    next_offset: int
    updated_at: datetime


@dataclass(frozen=True)
class PredictionLogSummary:
    """The served predictions stored (and how many still have their text), the feedback waiting for its
    prediction, the newest prediction's time, and the next offset of every partition of `topic`."""

    topic: str
    predictions: int
    with_text: int
    waiting_feedback: int
    newest: datetime | None
    partitions: list[PartitionOffset]


@dataclass(frozen=True)
class StoreSummary:
    """Stored and rejected records, the stored rows per label and per kind, the next offset of every partition of
    `topic`, and the prediction log."""

    topic: str
    rows: int
    holdout_rows: int
    rejected: int
    labels: dict[str, int]  # the most common labels (`LABELS_SHOWN`), with their rows
    distinct_labels: int  # a generative model's answers are labels too: thousands of them
    kinds: dict[str, int]
    last_ingested_at: datetime | None
    partitions: list[PartitionOffset]
    prediction_log: PredictionLogSummary


@dataclass(frozen=True)
class Rejection:
    topic: str
    partition: int
    offset: int
    reason: str
    raw_preview: str


def store_summary(con: duckdb.DuckDBPyConnection, topic: str, predictions_topic: str) -> StoreSummary:
    totals = con.execute(
        "SELECT count(*), count(*) FILTER (split = 'holdout'), (SELECT count(*) FROM rejected), max(ingested_at) "
        "FROM feedback"
    ).fetchall()[0]
    labels = con.execute(
        "SELECT label, count(*) AS n FROM feedback GROUP BY label ORDER BY n DESC, label LIMIT ?", [LABELS_SHOWN]
    ).fetchall()
    ((distinct,),) = con.execute("SELECT count(DISTINCT label) FROM feedback").fetchall()
    kinds = con.execute(
        "SELECT coalesce(kind, 'unknown'), count(*) AS n FROM feedback GROUP BY ALL ORDER BY n DESC, 1"
    ).fetchall()
    return StoreSummary(
        topic=topic,
        rows=totals[0],
        holdout_rows=totals[1],
        rejected=totals[2],
        labels=dict(labels),
        distinct_labels=distinct,
        kinds=dict(kinds),
        last_ingested_at=totals[3],
        partitions=_partitions(con, topic),
        prediction_log=_prediction_log(con, predictions_topic),
    )


def _prediction_log(con: duckdb.DuckDBPyConnection, topic: str) -> PredictionLogSummary:
    ((predictions, with_text, newest, waiting),) = con.execute(
        "SELECT count(*), count(text), max(ts), (SELECT count(*) FROM unmatched_feedback) FROM predictions"
    ).fetchall()
    return PredictionLogSummary(topic, predictions, with_text, waiting, newest, _partitions(con, topic))


def _partitions(con: duckdb.DuckDBPyConnection, topic: str) -> list[PartitionOffset]:
    offsets = con.execute(
        "SELECT partition, next_offset, updated_at FROM kafka_offsets WHERE topic = ? ORDER BY partition", [topic]
    ).fetchall()
    return [PartitionOffset(partition, offset, updated) for partition, offset, updated in offsets]


def recent_rejections(con: duckdb.DuckDBPyConnection, limit: int) -> list[Rejection]:
    """The newest rejected records, with the start of their raw value."""
    rows = con.execute(
        'SELECT topic, partition, "offset", reason, raw FROM rejected '
        'ORDER BY rejected_at DESC, partition, "offset" DESC LIMIT ?',
        [limit],
    ).fetchall()
    return [
        Rejection(topic, partition, offset, reason, bytes(raw[:60]).decode("utf-8", "replace"))
        for topic, partition, offset, reason, raw in rows
    ]
