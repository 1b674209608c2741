"""The feedback store: one DuckDB file, owned by one process.

A batch of raw Kafka records is checked, deduplicated and written together with the partitions' next
offsets in a single transaction, so a crash at any moment neither loses nor duplicates a record.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ingest.check_sql import draw_cut, drawn
from ingest.errors import IngestError
from ingest.prediction_log import (
    CHECKED_FEEDBACK_SQL,
    CHECKED_PREDICTIONS_SQL,
    INSERT_PREDICTIONS_SQL,
    KEEP_WAITING_SQL,
    log_clock,
    waiting_feedback,
)
from ingest.prediction_log import SCHEMA as PREDICTION_LOG_SCHEMA
from ingest.predictions import CHECK_SQL as PREDICTION_CHECK_SQL
from ingest.records import CHECK_SQL, check_parameters, raising_records
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)

STORE_VERSION = 4
# Each step brings a store from its version to the next. Version 1 lacked kafka_offsets.last_value_md5 (a NULL
# there: the partition's record is not checked once); version 2 the prediction log's columns of feedback (NULL for
# the rows stored before: records that named no prediction); version 3 required a prediction's confidence, which a
# generative model's answer has none of.
MIGRATIONS = {
    1: ("ALTER TABLE kafka_offsets ADD COLUMN last_value_md5 VARCHAR",),
    2: tuple(
        f"ALTER TABLE feedback ADD COLUMN IF NOT EXISTS {column}"
        for column in ("prediction_id VARCHAR", "kind VARCHAR", "confidence DOUBLE")
    ),
    3: ("ALTER TABLE predictions ALTER COLUMN confidence DROP NOT NULL",),
}

SCHEMA = """
CREATE TABLE IF NOT EXISTS store_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS feedback (
    row_id BIGINT NOT NULL,
    id VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    label VARCHAR NOT NULL,
    prediction VARCHAR,
    model_version VARCHAR,
    ts TIMESTAMPTZ NOT NULL,
    meta JSON,
    prediction_id VARCHAR,
    kind VARCHAR,
    confidence DOUBLE,
    split VARCHAR NOT NULL,
    episode INTEGER NOT NULL,
    text_hash VARCHAR NOT NULL,
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS rejected (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    raw BLOB NOT NULL,
    raw_bytes INTEGER NOT NULL,
    reason VARCHAR NOT NULL,
    record_id VARCHAR,
    rejected_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS kafka_offsets (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    updated_at TIMESTAMPTZ NOT NULL,
    last_value_md5 VARCHAR,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS episodes (
    episode INTEGER PRIMARY KEY,
    opened_at TIMESTAMPTZ NOT NULL,
    first_row_id BIGINT NOT NULL,
    reason VARCHAR NOT NULL
);
"""

INSERT_FEEDBACK_SQL = f"""
INSERT INTO feedback BY NAME
SELECT (SELECT coalesce(max(row_id), 0) FROM feedback) + row_number() OVER (ORDER BY arrival) AS row_id,
    id, text, label, prediction, model_version, ts, meta, prediction_id, kind, confidence,
    CASE WHEN kind = 'audit' THEN 'holdout' WHEN kind IN ('correction', 'confirmation') THEN 'train'
        WHEN {drawn("id", "$holdout_cut")} THEN 'holdout' ELSE 'train' END AS split,
    (SELECT coalesce(max(episode), 0) FROM episodes) AS episode,
    md5(text) AS text_hash, topic, partition, "offset", now() AS ingested_at
FROM checked WHERE reason IS NULL AND NOT waiting
"""

INSERT_REJECTED_SQL = """
INSERT INTO rejected
SELECT topic, partition, "offset", unhex(left(hex(coalesce(raw, ''::BLOB)), 2 * $cap)), coalesce(octet_length(raw), 0),
    reason, id, now()
FROM checked WHERE reason IS NOT NULL
"""

INSERT_FAILED_SQL = """
INSERT INTO rejected
SELECT topic, partition, "offset", unhex(left(hex(coalesce(raw, ''::BLOB)), 2 * $cap)), coalesce(octet_length(raw), 0),
    reason, NULL, now()
FROM failed
"""

CHECKS = {"predictions": PREDICTION_CHECK_SQL, "feedback": CHECK_SQL}

SAVE_OFFSETS_SQL = """
INSERT OR REPLACE INTO kafka_offsets
SELECT o.topic, o.partition, o.next_offset, now(), md5(a.raw)
FROM (SELECT unnest($topics) AS topic, unnest($partitions) AS partition, unnest($offsets) AS next_offset) AS o
LEFT JOIN arrived AS a ON a.topic = o.topic AND a.partition = o.partition AND a."offset" = o.next_offset - 1
"""


@dataclass(frozen=True)
class BatchResult:
    """A batch as written: feedback rows stored, records rejected (feedback or prediction events), the offsets
    saved, prediction events stored, and the feedback waiting for its prediction after it."""

    stored: int
    rejected: int
    next_offsets: Mapping[tuple[str, int], int]
    predictions: int = 0
    waiting: int = 0


@dataclass(frozen=True)
class PartResult:
    stored: int
    rejected: int
    waiting: int


@dataclass(frozen=True)
class Position:
    """Where a partition was read up to: the next offset and the md5 of the raw value just before it (None when
    the record was not seen, e.g. a store of version 1), so a recreated topic is told from the one it replaced."""

    next_offset: int
    last_value_md5: str | None


class FeedbackStore:
    """Feedback rows, the prediction log, rejected records and Kafka offsets in one DuckDB file.

    Records of `predictions_topic` are prediction events (the service's log, prediction_log.py); the records of
    every other topic are feedback.
    """

    def __init__(self, path: Path, settings: IngestSettings, predictions_topic: str | None = None) -> None:
        self.path = path
        self.settings = settings
        self.predictions_topic = predictions_topic
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.con = duckdb.connect(str(path))
        except duckdb.IOException as exc:
            raise IngestError(
                f"cannot open the store {path}: {exc}. Another driftloop process probably holds it; "
                "stop it or use the CLI against the running daemon"
            ) from None
        self.con.execute("SET TimeZone = 'UTC'")
        self.con.execute(f"SET threads = {settings.duckdb_threads}")
        self._migrate()

    def _migrate(self) -> None:
        self.con.execute(SCHEMA)
        self.con.execute(PREDICTION_LOG_SCHEMA)
        # fetchall, not fetchone: a result left unfinished on the connection would refuse the relation queries
        ((version,),) = self.con.execute("SELECT max(version) FROM store_version").fetchall()
        if version is None:
            self.con.execute("INSERT INTO store_version VALUES (?)", [STORE_VERSION])
        elif version in MIGRATIONS and version < STORE_VERSION:
            log.info("migrating the store %s from version %d to %d", self.path, version, STORE_VERSION)
            for step in range(version, STORE_VERSION):
                for statement in MIGRATIONS[step]:
                    self.con.execute(statement)
            self.con.execute("UPDATE store_version SET version = ?", [STORE_VERSION])
        elif version != STORE_VERSION:
            raise IngestError(
                f"the store {self.path} has version {version}; this driftloop reads version {STORE_VERSION}"
            )

    def write_batch(self, incoming: pa.Table, next_offsets: Mapping[tuple[str, int], int]) -> BatchResult:
        """Check `incoming` (see records.INCOMING_SCHEMA) and store it with the offsets, all or nothing.

        When the vectorised check raises, the records it raises on are found one by one and rejected with the
        error; the rest are checked and stored as usual, so one record never stops ingestion.
        """
        parts = self._parts(incoming)
        try:
            return self._write(parts, incoming, next_offsets, {})
        except duckdb.Error:
            raising = {kind: raising_records(part, self.settings, CHECKS[kind]) for kind, part in parts.items()}
            if not any(raising.values()):
                raise
        count = sum(len(found) for found in raising.values())
        log.warning("%d record(s) made the record check fail; rejected one by one, the rest checked", count)
        return self._write(parts, incoming, next_offsets, raising)

    def _parts(self, incoming: pa.Table) -> dict[str, pa.Table]:
        """The batch's prediction events, then its feedback after the feedback still waiting for its prediction."""
        is_event = pc.equal(incoming["topic"], pa.scalar(self.predictions_topic or "", pa.string()))
        feedback = incoming.filter(pc.invert(is_event))
        waiting = waiting_feedback(self.con)
        return {
            "predictions": incoming.filter(is_event),
            "feedback": pa.concat_tables([waiting, feedback]) if waiting.num_rows else feedback,
        }

    def _write(
        self,
        parts: Mapping[str, pa.Table],
        incoming: pa.Table,
        next_offsets: Mapping[tuple[str, int], int],
        raising: Mapping[str, Mapping[int, str]],
    ) -> BatchResult:
        self.con.begin()
        try:
            counted = {kind: self._store_part(kind, part, raising.get(kind, {})) for kind, part in parts.items()}
            self.con.register("arrived", incoming)
            self._save_offsets(next_offsets)
            self.con.unregister("arrived")
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
        return BatchResult(
            stored=counted["feedback"].stored,
            rejected=sum(part.rejected for part in counted.values()),
            next_offsets=dict(next_offsets),
            predictions=counted["predictions"].stored,
            waiting=counted["feedback"].waiting,
        )

    def _store_part(self, kind: str, part: pa.Table, raising: Mapping[int, str]) -> PartResult:
        """Check one part of the batch and write its rows and rejections (inside the batch's transaction)."""
        if part.num_rows == 0:
            return PartResult(0, 0, 0)
        checkable, failed = _set_aside(part, raising)
        cap = {"cap": self.settings.rejected_raw_cap_bytes}
        self.con.register("incoming", checkable)
        if kind == "predictions":
            self.con.execute(CHECKED_PREDICTIONS_SQL, check_parameters(self.settings))
            self.con.execute(INSERT_PREDICTIONS_SQL)
        else:
            clock = log_clock(self.con)
            window = {"window_s": self.settings.unmatched_feedback_s}
            self.con.execute(CHECKED_FEEDBACK_SQL, {**check_parameters(self.settings), **clock, **window})
            self.con.execute(INSERT_FEEDBACK_SQL, {"holdout_cut": draw_cut(self.settings.holdout_fraction)})
            self.con.execute(KEEP_WAITING_SQL)
        self.con.unregister("incoming")
        self.con.execute(INSERT_REJECTED_SQL, cap)
        if failed is not None:
            self.con.register("failed", failed)
            self.con.execute(INSERT_FAILED_SQL, cap)
            self.con.unregister("failed")
        ((stored, rejected, waiting),) = self.con.execute(
            "SELECT count(*) FILTER (reason IS NULL AND NOT waiting), count(*) FILTER (reason IS NOT NULL), "
            "count(*) FILTER (waiting) FROM checked"
        ).fetchall()
        self.con.execute("DROP TABLE checked")
        return PartResult(stored=stored, rejected=rejected + len(raising), waiting=waiting)

    def _save_offsets(self, next_offsets: Mapping[tuple[str, int], int]) -> None:
        if not next_offsets:
            return
        keys = list(next_offsets)
        self.con.execute(
            SAVE_OFFSETS_SQL,
            {
                "topics": [topic for topic, _ in keys],
                "partitions": [partition for _, partition in keys],
                "offsets": [next_offsets[key] for key in keys],
            },
        )

    def stored_offsets(self, topic: str) -> dict[int, int]:
        return {partition: position.next_offset for partition, position in self.stored_positions(topic).items()}

    def stored_positions(self, topic: str) -> dict[int, Position]:
        """Per partition of `topic`: the next offset to read and the hash of the record just before it."""
        rows = self.con.execute(
            "SELECT partition, next_offset, last_value_md5 FROM kafka_offsets WHERE topic = ?", [topic]
        ).fetchall()
        return {partition: Position(offset, md5) for partition, offset, md5 in rows}

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> FeedbackStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _set_aside(incoming: pa.Table, raising: Mapping[int, str]) -> tuple[pa.Table, pa.Table | None]:
    """The records to check, and the ones the check raised on with their reasons (None when there are none: the
    usual batch is passed on as it is)."""
    if not raising:
        return incoming, None
    keep = pa.array([index not in raising for index in range(incoming.num_rows)], pa.bool_())
    reasons = pa.array([raising[index] for index in sorted(raising)], pa.string())
    return incoming.filter(keep), incoming.filter(pc.invert(keep)).append_column("reason", reasons)
