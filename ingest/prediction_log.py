"""The prediction log in the store: every prediction the service served, and the feedback that names one by id.

Both run inside the store's batch transaction (store.py), so predictions, feedback and offsets land together:

1. the batch's prediction events are checked (predictions.CHECK_SQL), deduplicated by `prediction_id` and kept in
   `predictions`;
2. the batch's feedback, with the feedback still waiting for its prediction, is checked (records.CHECK_SQL) and
   joined to `predictions`: a record by `prediction_id` takes its text, prediction, model version and confidence
   from the log. A record whose prediction has not arrived waits in `unmatched_feedback` and is checked again with
   every batch; once the log has been read `ingest.unmatched_feedback_s` past the feedback's time (or stayed silent
   that long while it waited) it is rejected with the reason. Nothing is dropped silently.

Retention (`forget_old_predictions`) drops the text of predictions older than `ingest.prediction_text_days` and
the rows older than `ingest.prediction_days`; feedback keeps its own copy of the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from ingest.check_sql import draw_cut, drawn
from ingest.predictions import CHECK_SQL as PREDICTION_CHECK_SQL
from ingest.records import CHECK_SQL, INCOMING_SCHEMA
from ingest.settings import IngestSettings

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    row_id BIGINT NOT NULL,
    prediction_id VARCHAR NOT NULL,
    text VARCHAR,
    text_chars INTEGER NOT NULL,
    text_hash VARCHAR NOT NULL,
    prediction VARCHAR NOT NULL,
    confidence DOUBLE,  -- NULL for a generative model's answer
    top JSON,
    model_version VARCHAR NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    ingested_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS unmatched_feedback (
    topic VARCHAR NOT NULL,
    partition INTEGER NOT NULL,
    "offset" BIGINT NOT NULL,
    kafka_ts_ms BIGINT NOT NULL,
    raw BLOB NOT NULL,
    prediction_id VARCHAR NOT NULL,
    waiting_since TIMESTAMPTZ NOT NULL
);
"""

CHECKED_PREDICTIONS_SQL = f"""
CREATE OR REPLACE TEMP TABLE checked AS
WITH fresh AS ({PREDICTION_CHECK_SQL})
SELECT fresh.* REPLACE (CASE
    WHEN fresh.reason IS NOT NULL THEN fresh.reason
    WHEN stored.prediction_id IS NOT NULL
        OR row_number() OVER (PARTITION BY fresh.prediction_id, fresh.reason IS NULL ORDER BY arrival) > 1
        THEN 'duplicate prediction_id ' || left(fresh.prediction_id, 80) || '; the first event with this id is kept'
END AS reason), fresh.prediction_id AS id, false AS waiting
FROM fresh LEFT JOIN predictions AS stored ON fresh.reason IS NULL AND stored.prediction_id = fresh.prediction_id
"""

# Row ids follow the time each prediction was served: a batch that catches up on a backlog holds each partition's
# events one after another, and the served drift monitor reads its windows in row order.
INSERT_PREDICTIONS_SQL = """
INSERT INTO predictions BY NAME
SELECT (SELECT coalesce(max(row_id), 0) FROM predictions) + row_number() OVER (ORDER BY ts, arrival) AS row_id,
    prediction_id, text, length(text) AS text_chars, md5(text) AS text_hash, prediction, confidence, top,
    model_version, ts, topic, partition, "offset", now() AS ingested_at
FROM checked WHERE reason IS NULL
"""

# `waiting`: by prediction id, its prediction not logged yet, and not yet given up on. A kind left out is told from
# the label against the prediction for a record by prediction id (a user's reaction to what was served); a record
# with its own text is a plain `label`, of a source driftloop cannot tell biased or not.
CHECKED_FEEDBACK_SQL = f"""
CREATE OR REPLACE TEMP TABLE checked AS
WITH fresh AS ({CHECK_SQL}), joined AS (
    SELECT fresh.* REPLACE (
            coalesce(fresh.text, served.text) AS text,
            coalesce(fresh.prediction, served.prediction) AS prediction,
            coalesce(fresh.model_version, served.model_version) AS model_version),
        served.confidence,
        fresh.reason IS NULL AND fresh.text IS NULL AND served.prediction_id IS NULL AS unmatched,
        fresh.reason IS NULL AND fresh.text IS NULL AND served.prediction_id IS NOT NULL AND served.text IS NULL
            AS text_forgotten,
        coalesce(waiting.waiting_since, now()) AS waiting_since
    FROM fresh
    LEFT JOIN predictions AS served ON fresh.reason IS NULL AND served.prediction_id = fresh.prediction_id
    LEFT JOIN unmatched_feedback AS waiting
        ON waiting.topic = fresh.topic AND waiting.partition = fresh.partition AND waiting."offset" = fresh."offset"
), judged AS (
    SELECT *,
        unmatched AND coalesce(CAST($log_newest_ts AS TIMESTAMPTZ) - ts > to_seconds($window_s), false)
            OR unmatched AND now() - waiting_since > to_seconds($window_s)
                AND coalesce(CAST($log_quiet_since AS TIMESTAMPTZ), make_timestamptz(0))
                    < now() - to_seconds($window_s) AS given_up
    FROM joined
), storable AS (
    SELECT *, reason IS NULL AND NOT unmatched AND NOT text_forgotten AS complete FROM judged
)
SELECT storable.* REPLACE (CASE
    WHEN storable.reason IS NOT NULL THEN storable.reason
    WHEN given_up THEN 'no prediction ' || left(storable.prediction_id, 80) || ' arrived in the prediction log within '
        || $window_s || ' s of this feedback (ingest.unmatched_feedback_s): is the id one /predict returned, and the '
        || 'service''s log on (registry.prediction_log)? Send the text with the feedback to store it without the log'
    WHEN text_forgotten THEN 'the text of prediction ' || left(storable.prediction_id, 80) || ' is no longer kept '
        || '(ingest.prediction_text_days); send the text with the feedback'
    WHEN complete AND (stored.id IS NOT NULL
        OR row_number() OVER (PARTITION BY storable.id, complete ORDER BY arrival) > 1)
        THEN 'duplicate id ' || left(storable.id, 80) || '; the first record with this id is kept'
END AS reason,
coalesce(storable.kind, CASE WHEN storable.prediction_id IS NULL THEN 'label'
    WHEN storable.prediction = storable.label THEN 'confirmation' ELSE 'correction' END) AS kind),
unmatched AND NOT given_up AS waiting
FROM storable LEFT JOIN feedback AS stored ON complete AND stored.id = storable.id
"""

KEEP_WAITING_SQL = """
DELETE FROM unmatched_feedback;
INSERT INTO unmatched_feedback
SELECT topic, partition, "offset", kafka_ts_ms, raw, prediction_id, waiting_since FROM checked WHERE waiting
"""


def log_clock(con: duckdb.DuckDBPyConnection) -> dict[str, datetime | None]:
    """The prediction log's newest event time, and when an event last arrived (both answered from statistics)."""
    ((newest, last_arrived),) = con.execute("SELECT max(ts), max(ingested_at) FROM predictions").fetchall()
    return {"log_newest_ts": newest, "log_quiet_since": last_arrived}


def waiting_feedback(con: duckdb.DuckDBPyConnection) -> pa.Table:
    """The feedback waiting for its prediction, as raw records (records.INCOMING_SCHEMA), in arrival order."""
    # execute, not a relation: the store's connection may hold a caller's unfinished result, which a relation refuses
    rows = con.execute(
        'SELECT topic, partition, "offset", kafka_ts_ms, raw FROM unmatched_feedback ORDER BY waiting_since, "offset"'
    ).fetchall()
    return pa.Table.from_pylist([dict(zip(INCOMING_SCHEMA.names, row, strict=True)) for row in rows], INCOMING_SCHEMA)


def read_predictions(con: duckdb.DuckDBPyConnection, after_row_id: int = 0, limit: int | None = None) -> pa.Table:
    """Served predictions after `after_row_id` in row order: row_id, prediction_id, text (NULL once forgotten),
    text_chars, prediction, confidence, model_version, ts."""
    return con.sql(
        "SELECT row_id, prediction_id, text, text_chars, prediction, confidence, model_version, ts FROM predictions "
        "WHERE row_id > ? ORDER BY row_id LIMIT ?",
        params=[after_row_id, limit if limit is not None else 2**62],
    ).to_arrow_table()


def read_served(con: duckdb.DuckDBPyConnection, after_row_id: int | None, settled_before: datetime) -> pa.Table:
    """Served predictions after `after_row_id`, in row order, up to the first one predicted at or after
    `settled_before` (so a row that comes later in time is never skipped), each with the label people gave it:
    an audit label, else a correction's, else the prediction itself. Columns row_id, text ('' once forgotten),
    label, prediction, confidence, labelled_by (the label's kind, NULL for none)."""
    return con.sql(
        """
        WITH served AS (
            SELECT row_id, prediction_id, coalesce(text, '') AS text, prediction, confidence FROM predictions
            WHERE row_id > $after AND row_id < coalesce(
                (SELECT min(row_id) FROM predictions WHERE row_id > $after AND ts >= $settled_before), 2 ** 62)
        ), labelled AS (
            SELECT prediction_id,
                arg_min((label, kind), CASE kind WHEN 'audit' THEN 0 WHEN 'correction' THEN 1 ELSE 2 END) AS given
            FROM feedback WHERE prediction_id IN (SELECT prediction_id FROM served) GROUP BY prediction_id
        )
        SELECT served.row_id, served.text, coalesce(labelled.given[1], served.prediction) AS label, served.prediction,
            served.confidence, labelled.given[2] AS labelled_by
        FROM served LEFT JOIN labelled USING (prediction_id) ORDER BY served.row_id
        """,
        params={"after": after_row_id if after_row_id is not None else -1, "settled_before": settled_before},
    ).to_arrow_table()


def audit_sample(con: duckdb.DuckDBPyConnection, sample_rate: float, limit: int) -> list[dict[str, Any]]:
    """The newest served predictions in the audit sample (md5 of the prediction id below `sample_rate`) that have
    their text and no audit label yet, at most `limit`: what a reviewer labels next, as feedback records that
    lack only their label."""
    rows = con.execute(
        f"""
        SELECT prediction_id, text, prediction, model_version, ts FROM predictions AS served
        WHERE {drawn("prediction_id", "$cut")} AND text IS NOT NULL
            AND NOT EXISTS (SELECT 1 FROM feedback WHERE feedback.prediction_id = served.prediction_id
                            AND kind = 'audit')
        ORDER BY row_id DESC LIMIT $limit
        """,
        {"cut": draw_cut(sample_rate), "limit": limit},
    ).fetchall()
    return [
        {"prediction_id": prediction_id, "kind": "audit", "label": None, "text": text, "prediction": prediction,
         "model_version": version, "meta": {"served_at": ts.isoformat()}}
        for prediction_id, text, prediction, version, ts in rows
    ]  # fmt: skip


@dataclass(frozen=True)
class ServedAccuracy:
    """The served model's accuracy two ways: estimated from its confidence over its newest `predictions` (the mean
    top probability, which is the expected accuracy when the probabilities are calibrated), and measured on its
    newest `audited` audit labels. None where there is nothing to average."""

    model_version: str | None
    estimated: float | None
    predictions: int
    audited: float | None
    audit_rows: int


def served_accuracy(con: duckdb.DuckDBPyConnection, window: int) -> ServedAccuracy:
    """The accuracy of the model that served the newest logged prediction (see ServedAccuracy)."""
    newest = con.execute("SELECT model_version FROM predictions ORDER BY row_id DESC LIMIT 1").fetchall()
    if not newest:
        return ServedAccuracy(None, None, 0, None, 0)
    ((version,),) = newest
    ((estimated, predictions),) = con.execute(
        "SELECT avg(confidence), count(*) FROM (SELECT confidence FROM predictions WHERE model_version = ? "
        "ORDER BY row_id DESC LIMIT ?)",
        [version, window],
    ).fetchall()
    ((audited, audit_rows),) = con.execute(
        "SELECT avg(CAST(label = prediction AS DOUBLE)), count(*) FROM (SELECT label, prediction FROM feedback "
        "WHERE kind = 'audit' AND model_version = ? ORDER BY row_id DESC LIMIT ?)",
        [version, window],
    ).fetchall()
    return ServedAccuracy(version, estimated, predictions, audited, audit_rows)


def prediction_time(con: duckdb.DuckDBPyConnection, row_id: int) -> datetime | None:
    """When the served prediction of `row_id` was made (None when the log no longer holds it)."""
    found = con.execute("SELECT ts FROM predictions WHERE row_id = ?", [row_id]).fetchall()
    return found[0][0] if found else None


def forget_old_predictions(con: duckdb.DuckDBPyConnection, settings: IngestSettings, now: datetime) -> dict[str, int]:
    """Retention: texts older than `prediction_text_days` set to NULL, rows older than `prediction_days` deleted."""
    text_cutoff = now - timedelta(days=settings.prediction_text_days)
    row_cutoff = now - timedelta(days=settings.prediction_days)
    ((deleted,),) = con.execute("DELETE FROM predictions WHERE ts < ?", [row_cutoff]).fetchall()
    ((forgotten,),) = con.execute(
        "UPDATE predictions SET text = NULL WHERE ts < ? AND text IS NOT NULL", [text_cutoff]
    ).fetchall()
    return {"rows_deleted": deleted, "texts_forgotten": forgotten}
