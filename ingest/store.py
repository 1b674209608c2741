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

from ingest.errors import IngestError
from ingest.records import CHECK_SQL, check_parameters, raising_records
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)

STORE_VERSION = 2
# Version 1 lacked kafka_offsets.last_value_md5 (a NULL there: the partition's record is not checked once).
MIGRATIONS = {1: "ALTER TABLE kafka_offsets ADD COLUMN last_value_md5 VARCHAR"}

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

# Adds the "duplicate id" verdict to CHECK_SQL's: a stored id, or an earlier record of the same batch, wins.
CHECKED_SQL = f"""
CREATE OR REPLACE TEMP TABLE checked AS
WITH fresh AS ({CHECK_SQL})
SELECT fresh.* REPLACE (CASE
    WHEN fresh.reason IS NOT NULL THEN fresh.reason
    WHEN stored.id IS NOT NULL
        OR row_number() OVER (PARTITION BY fresh.id, fresh.reason IS NULL ORDER BY arrival) > 1
        THEN 'duplicate id ' || left(fresh.id, 80) || '; the first record with this id is kept'
END AS reason)
FROM fresh LEFT JOIN feedback AS stored ON fresh.reason IS NULL AND stored.id = fresh.id
"""

INSERT_FEEDBACK_SQL = """
INSERT INTO feedback
SELECT (SELECT coalesce(max(row_id), 0) FROM feedback) + row_number() OVER (ORDER BY arrival),
    id, text, label, prediction, model_version, ts, meta,
    CASE WHEN CAST('0x' || md5(id)[1:8] AS UBIGINT) < $holdout_cut THEN 'holdout' ELSE 'train' END,
    (SELECT coalesce(max(episode), 0) FROM episodes),
    md5(text), topic, partition, "offset", now()
FROM checked WHERE reason IS NULL
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

SAVE_OFFSETS_SQL = """
INSERT OR REPLACE INTO kafka_offsets
SELECT o.topic, o.partition, o.next_offset, now(), md5(a.raw)
FROM (SELECT unnest($topics) AS topic, unnest($partitions) AS partition, unnest($offsets) AS next_offset) AS o
LEFT JOIN arrived AS a ON a.topic = o.topic AND a.partition = o.partition AND a."offset" = o.next_offset - 1
"""


@dataclass(frozen=True)
class BatchResult:
    stored: int
    rejected: int
    next_offsets: Mapping[tuple[str, int], int]


@dataclass(frozen=True)
class Position:
    """Where a partition was read up to: the next offset and the md5 of the raw value just before it (None when
    the record was not seen, e.g. a store of version 1), so a recreated topic is told from the one it replaced."""

    next_offset: int
    last_value_md5: str | None


class FeedbackStore:
    """Feedback rows, rejected records and Kafka offsets in one DuckDB file."""

    def __init__(self, path: Path, settings: IngestSettings) -> None:
        self.path = path
        self.settings = settings
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
        found = self.con.execute("SELECT max(version) FROM store_version").fetchone()
        version = found[0] if found else None
        if version is None:
            self.con.execute("INSERT INTO store_version VALUES (?)", [STORE_VERSION])
        elif version in MIGRATIONS and version < STORE_VERSION:
            log.info("migrating the store %s from version %d to %d", self.path, version, STORE_VERSION)
            self.con.execute(MIGRATIONS[version])
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
        try:
            return self._write(incoming, next_offsets, {})
        except duckdb.Error:
            raising = raising_records(incoming, self.settings)
            if not raising:
                raise
        log.warning("%d record(s) made the record check fail; rejected one by one, the rest checked", len(raising))
        return self._write(incoming, next_offsets, raising)

    def _write(
        self, incoming: pa.Table, next_offsets: Mapping[tuple[str, int], int], raising: Mapping[int, str]
    ) -> BatchResult:
        checkable, failed = _set_aside(incoming, raising)
        self.con.begin()
        try:
            self.con.register("incoming", checkable)
            self.con.execute(CHECKED_SQL, check_parameters(self.settings))
            self.con.unregister("incoming")
            self.con.execute(INSERT_FEEDBACK_SQL, {"holdout_cut": int(self.settings.holdout_fraction * 2**32)})
            self.con.execute(INSERT_REJECTED_SQL, {"cap": self.settings.rejected_raw_cap_bytes})
            if failed is not None:
                self.con.register("failed", failed)
                self.con.execute(INSERT_FAILED_SQL, {"cap": self.settings.rejected_raw_cap_bytes})
                self.con.unregister("failed")
            self.con.register("arrived", incoming)
            self._save_offsets(next_offsets)
            self.con.unregister("arrived")
            counted = self.con.execute(
                "SELECT count(*) FILTER (reason IS NULL), count(*) FILTER (reason IS NOT NULL) FROM checked"
            ).fetchone()
            self.con.execute("DROP TABLE checked")
            self.con.commit()
        except BaseException:
            self.con.rollback()
            raise
        assert counted is not None
        return BatchResult(stored=counted[0], rejected=counted[1] + len(raising), next_offsets=dict(next_offsets))

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
