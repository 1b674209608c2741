"""Reading the stored feedback and keeping its episodes: the only SQL outside ingest/store.py that names ingest's
tables. Every function takes a connection (the daemon's cursor, or the CLI's own) and returns plain values."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import duckdb
import numpy as np
import numpy.typing as npt
import pyarrow as pa

UNBOUNDED = 2**62
Split = Literal["train", "holdout"]


@dataclass(frozen=True)
class StoredRow:
    """One feedback row as training reads it; `episode` is the newest episode opened at or before the row."""

    row_id: int
    id: str
    text: str
    label: str
    episode: int
    split: Split
    kind: str  # correction, confirmation, audit, or label
    prediction: str | None  # the served prediction, when the feedback names it


@dataclass(frozen=True)
class KafkaRange:
    """The offsets a run of stored rows came from, in one partition of one topic."""

    topic: str
    partition: int
    first_offset: int
    last_offset: int
    rows: int


@dataclass(frozen=True)
class Span:
    """Row ids first_row_id..last_row_id (inclusive) and what they share."""

    first_row_id: int
    last_row_id: int
    label: str


@dataclass(frozen=True)
class ServedOutcomes:
    """The rows that carry a served prediction, in row order, and whether the prediction was the label."""

    row_id: npt.NDArray[np.int64]
    correct: npt.NDArray[np.bool_]


def read_rows(
    con: duckdb.DuckDBPyConnection,
    after_row_id: int | None = None,
    until_row_id: int | None = None,
    limit: int | None = None,
) -> pa.Table:
    """Rows with after_row_id < row_id <= until_row_id in row order: columns row_id, text, label, prediction,
    model_version, kind, prediction_id."""
    return con.sql(
        "SELECT row_id, text, label, prediction, model_version, kind, prediction_id FROM feedback "
        "WHERE row_id > ? AND row_id <= ? ORDER BY row_id LIMIT ?",
        params=[
            after_row_id if after_row_id is not None else -UNBOUNDED,
            until_row_id if until_row_id is not None else UNBOUNDED,
            limit if limit is not None else UNBOUNDED,
        ],
    ).to_arrow_table()


def row_at(con: duckdb.DuckDBPyConnection, when: datetime) -> int:
    """The first row id stored with `ts` at or after a time (one past the last when none is)."""
    found = con.execute(
        "SELECT coalesce(min(row_id) FILTER (ts >= ?), max(row_id) + 1, 0) FROM feedback", [when]
    ).fetchall()
    return int(found[0][0])


def store_rows(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT count(*) FROM feedback").fetchall()[0][0])


def row_range(con: duckdb.DuckDBPyConnection) -> tuple[int, int] | None:
    """The first and last stored row id, or None for an empty store."""
    first, last = con.execute("SELECT min(row_id), max(row_id) FROM feedback").fetchall()[0]
    return None if first is None else (int(first), int(last))


def rows_since(con: duckdb.DuckDBPyConnection, first_row_id: int) -> tuple[int, int | None]:
    """How many rows are stored from `first_row_id` on, and the last of them."""
    count, last = con.execute(
        "SELECT count(*), max(row_id) FROM feedback WHERE row_id >= ?", [first_row_id]
    ).fetchall()[0]
    return int(count), None if last is None else int(last)


def rows_from_topic(con: duckdb.DuckDBPyConnection, topic: str) -> int:
    """Stored rows that came from `topic` (a file loaded directly is stored as topic `file:<name>`)."""
    return int(con.execute("SELECT count(*) FROM feedback WHERE topic = ?", [topic]).fetchall()[0][0])


def training_rows(con: duckdb.DuckDBPyConnection, last_row_id: int) -> list[StoredRow]:
    """Every row up to `last_row_id`, oldest first, each with its episode.

    A row's episode is the newest episode opened at or before it (the `episodes` table is the truth; the
    column stamped at ingest can lag by one batch when an episode opens during a write).
    """
    table = con.execute(
        "SELECT f.row_id, f.id, f.text, f.label, coalesce(e.episode, 0), f.split, coalesce(f.kind, 'label'), "
        "f.prediction FROM feedback f "
        "ASOF LEFT JOIN episodes e ON f.row_id >= e.first_row_id WHERE f.row_id <= ? ORDER BY f.row_id",
        [last_row_id],
    ).fetchall()
    return [StoredRow(int(row_id), id_, text, label, int(episode), split, kind, prediction)
            for row_id, id_, text, label, episode, split, kind, prediction in table]  # fmt: skip


def kafka_ranges(con: duckdb.DuckDBPyConnection, first_row_id: int, last_row_id: int) -> list[KafkaRange]:
    """The Kafka offset ranges the rows `first_row_id..last_row_id` came from, per topic and partition."""
    rows = con.execute(
        'SELECT topic, partition, min("offset"), max("offset"), count(*) FROM feedback '
        "WHERE row_id BETWEEN ? AND ? GROUP BY topic, partition ORDER BY topic, partition",
        [first_row_id, last_row_id],
    ).fetchall()
    return [KafkaRange(topic, partition, first, last, count) for topic, partition, first, last, count in rows]


def served_outcomes(con: duckdb.DuckDBPyConnection) -> ServedOutcomes:
    found = con.execute(
        "SELECT row_id, prediction = label AS correct FROM feedback WHERE prediction IS NOT NULL ORDER BY row_id"
    ).fetchnumpy()
    return ServedOutcomes(np.asarray(found["row_id"], dtype=np.int64), np.asarray(found["correct"], dtype=np.bool_))


def model_version_spans(con: duckdb.DuckDBPyConnection) -> list[Span]:
    """Runs of predicted rows served by one model version ("unknown" when the record did not say)."""
    found = con.execute("""
        SELECT min(row_id), max(row_id), coalesce(model_version, 'unknown') FROM (
            SELECT row_id, model_version, row_number() OVER (ORDER BY row_id)
                - row_number() OVER (PARTITION BY model_version ORDER BY row_id) AS run
            FROM feedback WHERE prediction IS NOT NULL
        ) GROUP BY model_version, run ORDER BY 1
    """).fetchall()
    return [Span(int(first), int(last), str(version)) for first, last, version in found]


def rows_ingested_nearest(con: duckdb.DuckDBPyConnection, times: Sequence[datetime]) -> list[int | None]:
    """For each time, the row ingested closest to it (the earlier row on a tie); None for an empty store."""
    nearest = []
    for when in times:
        found = con.execute(
            "SELECT row_id FROM feedback ORDER BY abs(epoch_us(ingested_at) - epoch_us(?::TIMESTAMPTZ)), "
            "CASE WHEN ingested_at <= ?::TIMESTAMPTZ THEN -row_id ELSE row_id END LIMIT 1",
            [when, when],
        ).fetchall()
        nearest.append(int(found[0][0]) if found else None)
    return nearest


def open_episode(con: duckdb.DuckDBPyConnection, episode: int, first_row_id: int, reason: str) -> None:
    """Open `episode` at `first_row_id` (once) and stamp the rows from there on with it. Runs inside the caller's
    transaction, so the episode opens together with whatever opened it."""
    if not con.execute("SELECT 1 FROM episodes WHERE episode = ?", [episode]).fetchall():
        con.execute("INSERT INTO episodes VALUES (?, now(), ?, ?)", [episode, first_row_id, reason])
    con.execute("UPDATE feedback SET episode = ? WHERE row_id >= ? AND episode < ?", [episode, first_row_id, episode])


def current_episode_start(con: duckdb.DuckDBPyConnection) -> int:
    """The first row of the newest episode (0 before any opened)."""
    return int(con.execute("SELECT coalesce(max(first_row_id), 0) FROM episodes").fetchall()[0][0])


def next_episode(con: duckdb.DuckDBPyConnection) -> int:
    return int(con.execute("SELECT coalesce(max(episode), 0) + 1 FROM episodes").fetchall()[0][0])


def episode_starts(con: duckdb.DuckDBPyConnection) -> dict[int, int]:
    """Each opened episode and its first row id."""
    return {int(e): int(first) for e, first in con.execute("SELECT episode, first_row_id FROM episodes").fetchall()}
