"""SQL pieces the record checks share (the feedback record's in records.py, the prediction event's in
prediction_check.py): decoding raw Kafka values, JSON types in words, times, text cleaning.

Every check reads a table `incoming` (records.INCOMING_SCHEMA) and yields one row per record with its cleaned
fields and `reason`: NULL for a good record, else one line naming the problem.
"""

from __future__ import annotations

MAX_EPOCH_MS = 4_102_444_800_000  # 2100-01-01: a later (or negative) time is a unit mistake, not a date

# Runs of whitespace (ASCII and Unicode separators) become one space; ends are trimmed. The cheap test
# first: a text of printable ASCII with no double space only needs trimming.
WHITESPACE = r"[\s\p{Z}\x{85}\x{0B}]+"

_JSON_TYPE_NAMES = """CASE {t} WHEN 'VARCHAR' THEN 'string' WHEN 'BIGINT' THEN 'number' WHEN 'UBIGINT'
    THEN 'number' WHEN 'DOUBLE' THEN 'number' WHEN 'HUGEINT' THEN 'number' WHEN 'BOOLEAN' THEN 'boolean'
    WHEN 'OBJECT' THEN 'object' WHEN 'ARRAY' THEN 'array' WHEN 'NULL' THEN 'null' ELSE lower({t}) END"""

NUMBER_TYPES = "('BIGINT', 'UBIGINT', 'DOUBLE')"
EMPTY_TEXT = "text is empty after whitespace normalisation"


def normalized(expr: str) -> str:
    return (
        f"trim(CASE WHEN regexp_matches({expr}, '[^ !-~]|  ') "
        f"THEN regexp_replace({expr}, '{WHITESPACE}', ' ', 'g') ELSE {expr} END)"
    )


def type_name(sql_type: str) -> str:
    return _JSON_TYPE_NAMES.format(t=sql_type)


def decoded(paths: str) -> str:
    """The CTEs every check starts with: `incoming` decoded, validated as JSON, and the fields at `paths` typed
    (`t`) and read as strings (`v`). Each document is parsed three times in all: validity, types, values."""
    return f"""
WITH decoded AS (
    SELECT *, row_number() OVER () AS arrival, octet_length(raw) AS n_bytes,
           CASE WHEN octet_length(raw) <= $max_record_bytes THEN try(decode(raw)) END AS body
    FROM incoming
), parsed AS (
    SELECT *, json_valid(body) AS is_json FROM decoded
), fields AS (
    SELECT *,
        CASE WHEN is_json THEN json_type(body) END AS doc_type,
        CASE WHEN is_json THEN json_type(body, {paths}) END AS t,
        CASE WHEN is_json THEN json_extract_string(body, {paths}) END AS v
    FROM parsed
)"""


def envelope_reasons() -> str:
    """Why a raw value is no JSON object at all: the first WHENs of every check's CASE."""
    return f"""WHEN n_bytes > $max_record_bytes THEN 'record is ' || n_bytes || ' bytes; the limit is '
            || $max_record_bytes || ' (ingest.max_record_bytes)'
        WHEN raw IS NULL THEN 'no value (a null record)'
        WHEN body IS NULL THEN 'not valid UTF-8'
        WHEN NOT is_json THEN 'not JSON: ' || left(body, 40)
        WHEN doc_type <> 'OBJECT' THEN 'not a JSON object (got ' || {type_name("doc_type")} || ')'"""


def required_string(index: int, name: str) -> str:
    return f"""WHEN t[{index}] IS NULL THEN 'missing field ''{name}'''
        WHEN t[{index}] <> 'VARCHAR'
            THEN 'field ''{name}'' must be a string (got ' || {type_name(f"t[{index}]")} || ')'"""


def optional_string(index: int, name: str) -> str:
    return f"""WHEN t[{index}] NOT IN ('VARCHAR', 'NULL')
        THEN 'field ''{name}'' must be a string or absent (got ' || {type_name(f"t[{index}]")} || ')'"""


def printable(column: str, name: str, plural: str) -> str:
    return f"""WHEN regexp_matches(coalesce({column}, ''), '[[:cntrl:]]') THEN 'field ''{name}'' contains a control '
            || 'character (newline, NUL, escape, ...); {plural} must be printable'"""


def sized(column: str, what: str, setting: str, empty: str = "") -> str:
    """Why `column` is empty (`empty`, by default "field 'what' is empty") or longer than the `setting` allows."""
    empty = empty or f"field ''{what}'' is empty"
    return f"""WHEN {column} = '' THEN '{empty}'
        WHEN length({column}) > ${setting} THEN '{what} is ' || length({column}) || ' characters; the limit is '
            || ${setting} || ' (ingest.{setting})'"""


def drawn(expr: str, cut: str) -> str:
    """True for a stable random share of rows: the first 32 bits of md5(`expr`) below the parameter `cut`, which
    `draw_cut` makes from the share (the holdout split by id, the audit sample by prediction id)."""
    return f"CAST('0x' || md5({expr})[1:8] AS UBIGINT) < {cut}"


def draw_cut(share: float) -> int:
    return int(share * 2**32)


def ts_value(index: int) -> str:
    """The record's time: field `index` in epoch milliseconds or RFC 3339, else the Kafka timestamp."""
    return f"""CASE
            WHEN t[{index}] IN {NUMBER_TYPES} AND try_cast(v[{index}] AS DOUBLE) BETWEEN 0 AND $max_epoch_ms
                THEN make_timestamptz(CAST(CAST(v[{index}] AS DOUBLE) * 1000 AS BIGINT))
            WHEN t[{index}] = 'VARCHAR' THEN try_cast(v[{index}] AS TIMESTAMPTZ)
            WHEN (t[{index}] IS NULL OR t[{index}] = 'NULL') AND kafka_ts_ms BETWEEN 0 AND $max_epoch_ms
                THEN make_timestamptz(kafka_ts_ms * 1000)
        END"""


def ts_reasons(index: int) -> str:
    """Why field `index` is no time (its value as `ts_value` reads it is `c_ts`)."""
    return f"""WHEN t[{index}] NOT IN ('BIGINT', 'UBIGINT', 'DOUBLE', 'VARCHAR', 'NULL') THEN 'field ''ts'' must be an '
            || 'RFC 3339 string or epoch milliseconds (got ' || {type_name(f"t[{index}]")} || ')'
        WHEN t[{index}] IN {NUMBER_TYPES} AND c_ts IS NULL THEN 'field ''ts'' is ' || left(v[{index}], 40)
            || ', not epoch milliseconds between 1970 and 2100 (seconds, microseconds or nanoseconds?); send '
            || 'epoch milliseconds or an RFC 3339 time'
        WHEN (t[{index}] IS NULL OR t[{index}] = 'NULL') AND c_ts IS NULL THEN 'no field ''ts'' and the Kafka '
            || 'timestamp ' || kafka_ts_ms || ' is not between 1970 and 2100; send ''ts'' with the record'
        WHEN c_ts IS NULL THEN 'field ''ts'' is not an RFC 3339 time: ' || left(v[{index}], 40)
        WHEN NOT c_ts BETWEEN make_timestamptz(0) AND make_timestamptz($max_epoch_ms * 1000)
            THEN 'field ''ts'' is ' || left(v[{index}], 40) || ', outside 1970 to 2100'"""
