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

FIELDS = ("id", "text", "label", "prediction", "model_version", "ts", "meta")
MAX_EPOCH_MS = 4_102_444_800_000  # 2100-01-01: a later (or negative) time is a unit mistake, not a date

# Runs of whitespace (ASCII and Unicode separators) become one space; ends are trimmed. The cheap test
# first: a text of printable ASCII with no double space only needs trimming.
WHITESPACE = r"[\s\p{Z}\x{85}\x{0B}]+"


def _normalized(expr: str) -> str:
    return (
        f"trim(CASE WHEN regexp_matches({expr}, '[^ !-~]|  ') "
        f"THEN regexp_replace({expr}, '{WHITESPACE}', ' ', 'g') ELSE {expr} END)"
    )


_JSON_TYPE_NAMES = """CASE {t} WHEN 'VARCHAR' THEN 'string' WHEN 'BIGINT' THEN 'number' WHEN 'UBIGINT'
    THEN 'number' WHEN 'DOUBLE' THEN 'number' WHEN 'HUGEINT' THEN 'number' WHEN 'BOOLEAN' THEN 'boolean'
    WHEN 'OBJECT' THEN 'object' WHEN 'ARRAY' THEN 'array' WHEN 'NULL' THEN 'null' ELSE lower({t}) END"""


def _type_name(sql_type: str) -> str:
    return _JSON_TYPE_NAMES.format(t=sql_type)


def _required_string(index: int, name: str) -> str:
    return f"""WHEN t[{index}] IS NULL THEN 'missing field ''{name}'''
        WHEN t[{index}] <> 'VARCHAR'
            THEN 'field ''{name}'' must be a string (got ' || {_type_name(f"t[{index}]")} || ')'"""


def _optional_string(index: int, name: str) -> str:
    return f"""WHEN t[{index}] NOT IN ('VARCHAR', 'NULL')
        THEN 'field ''{name}'' must be a string or absent (got ' || {_type_name(f"t[{index}]")} || ')'"""


# Each JSON document is parsed three times in all: validity, the fields' types, the fields' values.
PATHS = "['$.id', '$.text', '$.label', '$.prediction', '$.model_version', '$.ts', '$.meta']"

CHECK_SQL = f"""
WITH decoded AS (
    SELECT *, row_number() OVER () AS arrival, octet_length(raw) AS n_bytes,
           CASE WHEN octet_length(raw) <= $max_record_bytes THEN try(decode(raw)) END AS body
    FROM incoming
), parsed AS (
    SELECT *, json_valid(body) AS is_json FROM decoded
), fields AS (
    SELECT *,
        CASE WHEN is_json THEN json_type(body) END AS doc_type,
        CASE WHEN is_json THEN json_type(body, {PATHS}) END AS t,
        CASE WHEN is_json THEN json_extract_string(body, {PATHS}) END AS v
    FROM parsed
), cleaned AS (
    SELECT *,
        trim(v[1]) AS c_id,
        {_normalized("v[2]")} AS c_text,
        {_normalized("v[3]")} AS c_label,
        CASE t[4] WHEN 'VARCHAR' THEN trim(v[4]) END AS c_prediction,
        CASE t[5] WHEN 'VARCHAR' THEN trim(v[5]) END AS c_model_version,
        CASE
            WHEN t[6] IN ('BIGINT', 'UBIGINT', 'DOUBLE') AND try_cast(v[6] AS DOUBLE) BETWEEN 0 AND $max_epoch_ms
                THEN make_timestamptz(CAST(CAST(v[6] AS DOUBLE) * 1000 AS BIGINT))
            WHEN t[6] = 'VARCHAR' THEN try_cast(v[6] AS TIMESTAMPTZ)
            WHEN (t[6] IS NULL OR t[6] = 'NULL') AND kafka_ts_ms BETWEEN 0 AND $max_epoch_ms
                THEN make_timestamptz(kafka_ts_ms * 1000)
        END AS c_ts,
        CASE t[7] WHEN 'OBJECT' THEN v[7] END AS c_meta
    FROM fields
)
SELECT topic, partition, "offset", raw, arrival,
    c_id AS id, c_text AS text, c_label AS label, c_prediction AS prediction,
    c_model_version AS model_version, c_ts AS ts, c_meta AS meta,
    CASE
        WHEN n_bytes > $max_record_bytes THEN 'record is ' || n_bytes || ' bytes; the limit is '
            || $max_record_bytes || ' (ingest.max_record_bytes)'
        WHEN raw IS NULL THEN 'no value (a null record)'
        WHEN body IS NULL THEN 'not valid UTF-8'
        WHEN NOT is_json THEN 'not JSON: ' || left(body, 40)
        WHEN doc_type <> 'OBJECT' THEN 'not a JSON object (got ' || {_type_name("doc_type")} || ')'
        {_required_string(1, "id")}
        {_required_string(2, "text")}
        {_required_string(3, "label")}
        {_optional_string(4, "prediction")}
        {_optional_string(5, "model_version")}
        WHEN t[6] NOT IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'VARCHAR', 'NULL')
            THEN 'field ''ts'' must be an RFC 3339 string or epoch milliseconds (got ' || {_type_name("t[6]")} || ')'
        WHEN t[6] IN ('BIGINT', 'UBIGINT', 'DOUBLE') AND c_ts IS NULL THEN 'field ''ts'' is ' || left(v[6], 40)
            || ', not epoch milliseconds between 1970 and 2100 (seconds, microseconds or nanoseconds?); send '
            || 'epoch milliseconds or an RFC 3339 time'
        WHEN (t[6] IS NULL OR t[6] = 'NULL') AND c_ts IS NULL THEN 'no field ''ts'' and the Kafka timestamp '
            || kafka_ts_ms || ' is not between 1970 and 2100; send ''ts'' with the record'
        WHEN c_ts IS NULL THEN 'field ''ts'' is not an RFC 3339 time: ' || left(v[6], 40)
        WHEN NOT c_ts BETWEEN make_timestamptz(0) AND make_timestamptz($max_epoch_ms * 1000)
            THEN 'field ''ts'' is ' || left(v[6], 40) || ', outside 1970 to 2100'
        WHEN regexp_matches(c_id, '[[:cntrl:]]') THEN 'field ''id'' contains a control character (newline, NUL, '
            || 'escape, ...); ids must be printable'
        WHEN regexp_matches(c_label, '[[:cntrl:]]') THEN 'field ''label'' contains a control character (newline, '
            || 'NUL, escape, ...); labels must be printable'
        WHEN regexp_matches(coalesce(c_prediction, ''), '[[:cntrl:]]') THEN 'field ''prediction'' contains a '
            || 'control character (newline, NUL, escape, ...); predictions must be printable'
        WHEN t[7] NOT IN ('OBJECT', 'NULL') THEN 'field ''meta'' must be an object (got ' || {_type_name("t[7]")} || ')'
        WHEN c_id = '' THEN 'field ''id'' is empty'
        WHEN length(c_id) > $max_id_chars THEN 'id is ' || length(c_id) || ' characters; the limit is '
            || $max_id_chars || ' (ingest.max_id_chars)'
        WHEN c_text = '' THEN 'text is empty after whitespace normalisation'
        WHEN length(c_text) > $max_text_chars THEN 'text is ' || length(c_text) || ' characters; the limit is '
            || $max_text_chars || ' (ingest.max_text_chars)'
        WHEN c_label = '' THEN 'field ''label'' is empty'
        WHEN length(c_label) > $max_label_chars THEN 'label is ' || length(c_label)
            || ' characters; the limit is ' || $max_label_chars || ' (ingest.max_label_chars)'
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


def raising_records(incoming: pa.Table, settings: IngestSettings) -> dict[int, str]:
    """The records the vectorised check raises on, checked one by one: position -> the reason they are rejected.

    A record the query cannot get through (a cast out of range, say) would otherwise fail its whole batch, on
    every retry; alone, it is rejected with the error, and the rest of the batch is checked as usual.
    """
    found: dict[int, str] = {}
    with duckdb.connect() as con:
        for index in range(incoming.num_rows):
            con.register("incoming", incoming.slice(index, 1))
            try:
                con.execute(f"SELECT * FROM ({CHECK_SQL})", check_parameters(settings)).fetchall()
            except duckdb.Error as exc:
                first_line = str(exc).splitlines()[0][:200]
                found[index] = f"the record check failed on this record ({type(exc).__name__}: {first_line})"
            con.unregister("incoming")
    return found
