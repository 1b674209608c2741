"""The feedback record schema, checked and cleaned in one vectorised DuckDB query.

The query reads a table `incoming` (Kafka coordinates plus the raw value bytes) and yields one row per
record with the cleaned fields and `reason`: NULL for a good record, else one line naming the problem.
The same query serves the ingest path and the producer's own check, so both agree by construction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa

from ingest.check_sql import (
    EMPTY_TEXT,
    MAX_EPOCH_MS,
    decoded,
    envelope_reasons,
    normalized,
    optional_string,
    printable,
    required_string,
    sized,
    ts_reasons,
    ts_value,
    type_name,
)
from ingest.settings import IngestSettings

INCOMING_SCHEMA = pa.schema(
    [
        ("topic", pa.string()),
        ("partition", pa.int32()),
        ("offset", pa.int64()),
        ("kafka_ts_ms", pa.int64()),
        ("raw", pa.binary()),
    ]
)

FIELDS = ("id", "text", "label", "prediction", "model_version", "ts", "meta", "prediction_id", "kind")
KINDS = ("correction", "confirmation", "audit")  # what a person's label says about a served prediction
PATHS = str([f"$.{name}" for name in FIELDS])

# A record by prediction id may leave out `text` (the prediction log has it) and `id` (then prediction_id:kind).
CHECK_SQL = f"""
{decoded(PATHS)}, cleaned AS (
    SELECT *,
        trim(v[8]) AS c_prediction_id,
        CASE t[9] WHEN 'VARCHAR' THEN lower(trim(v[9])) END AS c_kind,
        coalesce(trim(v[1]), trim(v[8]) || ':' || coalesce(lower(trim(v[9])), 'feedback')) AS c_id,
        {normalized("v[2]")} AS c_text,
        {normalized("v[3]")} AS c_label,
        CASE t[4] WHEN 'VARCHAR' THEN trim(v[4]) END AS c_prediction,
        CASE t[5] WHEN 'VARCHAR' THEN trim(v[5]) END AS c_model_version,
        {ts_value(6)} AS c_ts,
        CASE t[7] WHEN 'OBJECT' THEN v[7] END AS c_meta
    FROM fields
)
SELECT topic, partition, "offset", kafka_ts_ms, raw, arrival,
    c_id AS id, c_text AS text, c_label AS label, c_prediction AS prediction,
    c_model_version AS model_version, c_ts AS ts, c_meta AS meta, c_prediction_id AS prediction_id, c_kind AS kind,
    CASE
        {envelope_reasons()}
        {optional_string(8, "prediction_id")}
        WHEN t[1] IS NULL AND c_prediction_id IS NULL THEN 'missing field ''id'''
        WHEN t[1] <> 'VARCHAR' AND (t[1] <> 'NULL' OR c_prediction_id IS NULL)
            THEN 'field ''id'' must be a string (got ' || {type_name("t[1]")} || ')'
        WHEN t[2] IS NULL AND c_prediction_id IS NULL THEN 'missing field ''text'''
        WHEN t[2] <> 'VARCHAR' AND (t[2] <> 'NULL' OR c_prediction_id IS NULL)
            THEN 'field ''text'' must be a string (got ' || {type_name("t[2]")} || ')'
        {required_string(3, "label")}
        {optional_string(4, "prediction")}
        {optional_string(5, "model_version")}
        {optional_string(9, "kind")}
        {ts_reasons(6)}
        {printable("c_id", "id", "ids")}
        {printable("c_label", "label", "labels")}
        {printable("c_prediction", "prediction", "predictions")}
        WHEN t[7] NOT IN ('OBJECT', 'NULL') THEN 'field ''meta'' must be an object (got ' || {type_name("t[7]")} || ')'
        WHEN c_kind NOT IN {KINDS} THEN 'field ''kind'' is ' || left(v[9], 40) || '; send one of '
            || '{", ".join(KINDS)}, or leave it out'
        {sized("c_prediction_id", "prediction_id", "max_id_chars")}
        {sized("c_id", "id", "max_id_chars")}
        {sized("c_text", "text", "max_text_chars", EMPTY_TEXT)}
        {sized("c_label", "label", "max_label_chars")}
    END AS reason
FROM cleaned
"""


@dataclass(frozen=True)
class Checked:
    """A record after the check: the cleaned fields, or the reason it was rejected."""

    id: str | None
    text: str | None
    label: str | None
    prediction: str | None
    model_version: str | None
    meta: str | None
    reason: str | None


def check_parameters(settings: IngestSettings) -> dict[str, int]:
    return {
        "max_epoch_ms": MAX_EPOCH_MS,
        "max_record_bytes": settings.max_record_bytes,
        "max_id_chars": settings.max_id_chars,
        "max_text_chars": settings.max_text_chars,
        "max_label_chars": settings.max_label_chars,
    }


def incoming_table(
    values: Sequence[bytes | None],
    topic: str = "",
    partitions: list[int] | None = None,
    offsets: list[int] | None = None,
    timestamps_ms: list[int] | None = None,
) -> pa.Table:
    """Arrow table of raw values in the shape CHECK_SQL reads; coordinates default to list positions."""
    count = len(values)
    return pa.Table.from_arrays(
        [
            pa.array([topic] * count, pa.string()),
            pa.array(partitions if partitions is not None else [0] * count, pa.int32()),
            pa.array(offsets if offsets is not None else range(count), pa.int64()),
            pa.array(timestamps_ms if timestamps_ms is not None else [0] * count, pa.int64()),
            pa.array(values, pa.binary()),
        ],
        schema=INCOMING_SCHEMA,
    )


def check_values(values: list[bytes], settings: IngestSettings) -> list[Checked]:
    """Check raw values outside the store (the producer's own check); results in input order."""
    incoming = incoming_table(values)
    try:
        return _checked(incoming, settings)
    except duckdb.Error:
        raising = raising_records(incoming, settings)
        if not raising:
            raise
    kept = iter(
        _checked(incoming.filter(pa.array([i not in raising for i in range(len(values))], pa.bool_())), settings)
    )
    return [Checked(None, None, None, None, None, None, raising[i]) if i in raising else next(kept)
            for i in range(len(values))]  # fmt: skip


def _checked(incoming: pa.Table, settings: IngestSettings) -> list[Checked]:
    with duckdb.connect() as con:
        con.register("incoming", incoming)
        rows = con.execute(
            f"SELECT id, text, label, prediction, model_version, meta, reason FROM ({CHECK_SQL}) ORDER BY arrival",
            check_parameters(settings),
        ).fetchall()
    return [Checked(*row) for row in rows]


def raising_records(incoming: pa.Table, settings: IngestSettings, check_sql: str | None = None) -> dict[int, str]:
    """The records the vectorised check raises on, checked one by one: position -> the reason they are rejected.

    A record the query cannot get through (a cast out of range, say) would otherwise fail its whole batch, on
    every retry; alone, it is rejected with the error, and the rest of the batch is checked as usual. The check is
    `check_sql`, by default the feedback record's.
    """
    check_sql = check_sql or CHECK_SQL
    found: dict[int, str] = {}
    with duckdb.connect() as con:
        for index in range(incoming.num_rows):
            con.register("incoming", incoming.slice(index, 1))
            try:
                con.execute(f"SELECT * FROM ({check_sql})", check_parameters(settings)).fetchall()
            except duckdb.Error as exc:
                first_line = str(exc).splitlines()[0][:200]
                found[index] = f"the record check failed on this record ({type(exc).__name__}: {first_line})"
            con.unregister("incoming")
    return found
