"""The record check: every kind of bad record gets a reason that names it; good records are cleaned."""

from __future__ import annotations

import json

import duckdb
import pytest

from ingest.records import CHECK_SQL, Checked, check_parameters, check_values, incoming_table
from ingest.settings import IngestSettings

NOT_MS = (
    "not epoch milliseconds between 1970 and 2100 (seconds, microseconds or nanoseconds?); "
    "send epoch milliseconds or an RFC 3339 time"
)
SETTINGS = IngestSettings(max_text_chars=50, max_id_chars=10, max_label_chars=8, max_record_bytes=2_048)


def reason_for(value: bytes) -> str | None:
    (checked,) = check_values([value], SETTINGS)
    return checked.reason


def record(**fields: object) -> bytes:
    base: dict[str, object] = {"id": "r1", "text": "a text", "label": "pos"}
    base.update(fields)
    return json.dumps({key: value for key, value in base.items() if value is not ...}).encode()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"{not json", "not JSON: {not json"),
        (b"", "not JSON: "),
        (b"[1, 2]", "not a JSON object (got array)"),
        (b'"a string"', "not a JSON object (got string)"),
        (record(id=...), "missing field 'id'"),
        (record(text=...), "missing field 'text'"),
        (record(label=...), "missing field 'label'"),
        (record(id=7), "field 'id' must be a string (got number)"),
        (record(text=None), "field 'text' must be a string (got null)"),
        (record(label=["a"]), "field 'label' must be a string (got array)"),
        (record(prediction=1.5), "field 'prediction' must be a string or absent (got number)"),
        (record(model_version=True), "field 'model_version' must be a string or absent (got boolean)"),
        (record(ts=True), "field 'ts' must be an RFC 3339 string or epoch milliseconds (got boolean)"),
        (record(ts="last tuesday"), "field 'ts' is not an RFC 3339 time: last tuesday"),
        (record(meta=[1]), "field 'meta' must be an object (got array)"),
        (record(id="  "), "field 'id' is empty"),
        (record(id="x" * 11), "id is 11 characters; the limit is 10 (ingest.max_id_chars)"),
        (record(text=" \t\n\u00a0 "), "text is empty after whitespace normalisation"),
        (record(text="y" * 51), "text is 51 characters; the limit is 50 (ingest.max_text_chars)"),
        (record(label=""), "field 'label' is empty"),
        (record(label="z" * 9), "label is 9 characters; the limit is 8 (ingest.max_label_chars)"),
        (b'{"pad": "' + b"p" * 2_100 + b'"}', "record is 2111 bytes; the limit is 2048 (ingest.max_record_bytes)"),
        (record(ts=1_732_900_000_000_000_000), "field 'ts' is 1732900000000000000, " + NOT_MS),
        (record(ts=1_732_900_000_000_000), "field 'ts' is 1732900000000000, " + NOT_MS),
        (record(ts=-5), "field 'ts' is -5, " + NOT_MS),
        (record(ts=1e300), "field 'ts' is 1e300, " + NOT_MS),
        (record(ts="9999-01-01T00:00:00Z"), "field 'ts' is 9999-01-01T00:00:00Z, outside 1970 to 2100"),
        (
            record(id="a\nb"),
            "field 'id' contains a control character (newline, NUL, escape, ...); ids must be printable",
        ),
        (
            record(id="a\u0000b"),
            "field 'id' contains a control character (newline, NUL, escape, ...); ids must be printable",
        ),
        (
            record(label="\u001b[31mred"),
            "field 'label' contains a control character (newline, NUL, escape, ...); labels must be printable",
        ),
        (
            record(prediction="x\ty"),
            "field 'prediction' contains a control character (newline, NUL, escape, ...); "
            "predictions must be printable",
        ),
        (
            record(kind="opinion"),
            "field 'kind' is opinion; send one of correction, confirmation, audit, or leave it out",
        ),
        (record(kind=3), "field 'kind' must be a string or absent (got number)"),
        (record(id=..., text=..., prediction_id=7), "field 'prediction_id' must be a string or absent (got number)"),
        (record(id=..., text=..., prediction_id=""), "field 'prediction_id' is empty"),
        (
            record(id=..., text=..., prediction_id="p" * 11),
            "prediction_id is 11 characters; the limit is 10 (ingest.max_id_chars)",
        ),  # fmt: skip
    ],
)
def test_bad_record_is_rejected_with_a_reason_naming_the_problem(value: bytes, expected: str) -> None:
    assert reason_for(value) == expected


def test_good_record_is_cleaned() -> None:
    value = record(text="  many \t spaces\u00a0and\nlines  ", label=" pos ", prediction="neg", meta={"app": "x"})
    (checked,) = check_values([value], SETTINGS)
    assert checked.reason is None
    cleaned = (checked.id, checked.text, checked.label, checked.prediction)
    assert cleaned == ("r1", "many spaces and lines", "pos", "neg")
    assert json.loads(str(checked.meta)) == {"app": "x"}


def test_a_record_by_prediction_id_needs_neither_text_nor_id() -> None:
    by_id, nulls = check_values(
        [record(id=..., text=..., prediction_id="p1", kind="Audit"), record(id=None, text=None, prediction_id="p")],
        SETTINGS,
    )
    assert (by_id.id, by_id.text, by_id.reason) == ("p1:audit", None, None)
    assert (nulls.id, nulls.text, nulls.reason) == ("p:feedback", None, None)


@pytest.mark.parametrize("ts", ["2024-05-01T10:00:00Z", "2024-05-01T12:00:00+02:00", 1714557600000, None])
def test_timestamps_accepted_as_rfc3339_epoch_ms_or_absent(ts: object) -> None:
    assert reason_for(record(ts=ts)) is None


def test_results_keep_input_order() -> None:
    values = [record(id=f"r{index}") if index % 3 else b"bad" for index in range(30)]
    checked = check_values(values, SETTINGS)
    assert [item.reason is None for item in checked] == [index % 3 != 0 for index in range(30)]
    assert [item.id for item in checked if item.reason is None] == [f"r{i}" for i in range(30) if i % 3]


def test_null_value_is_rejected() -> None:
    (checked,) = check_values([None], SETTINGS)  # type: ignore[list-item]
    assert checked.reason == "no value (a null record)"


def test_a_kafka_timestamp_out_of_range_without_ts_is_rejected() -> None:
    (checked,) = check_values_at([record()], kafka_ts_ms=2**62)
    assert (
        checked.reason
        == f"no field 'ts' and the Kafka timestamp {2**62} is not between 1970 and 2100; send 'ts' with the record"
    )


def check_values_at(values: list[bytes], kafka_ts_ms: int) -> list[Checked]:
    with duckdb.connect() as con:
        con.register("incoming", incoming_table(values, timestamps_ms=[kafka_ts_ms] * len(values)))
        rows = con.execute(f"SELECT id, text, label, prediction, model_version, meta, reason FROM ({CHECK_SQL})",
                           check_parameters(SETTINGS)).fetchall()  # fmt: skip
    return [Checked(*row) for row in rows]
