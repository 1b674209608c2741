"""The DuckDB feedback store: one transaction per batch, duplicates, splits, offsets, versions, locks."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from ingest import prediction_log
from ingest import store as store_module
from ingest.errors import IngestError
from ingest.records import CHECK_SQL, check_values, incoming_table
from ingest.settings import IngestSettings
from ingest.store import STORE_VERSION, FeedbackStore, Position
from ingest.summary import recent_rejections, store_summary


def values(ids: list[str], label: str = "pos") -> list[bytes]:
    return [json.dumps({"id": i, "text": f"text of {i}", "label": label}).encode() for i in ids]


def write(store: FeedbackStore, raw: list[bytes], first_offset: int = 0, partition: int = 0) -> tuple[int, int]:
    offsets = list(range(first_offset, first_offset + len(raw)))
    table = incoming_table(raw, "t", [partition] * len(raw), offsets, [1_700_000_000_000] * len(raw))
    result = store.write_batch(table, {("t", partition): first_offset + len(raw)})
    return result.stored, result.rejected


@pytest.fixture
def store(store_path: Path) -> FeedbackStore:
    return FeedbackStore(store_path, IngestSettings(rejected_raw_cap_bytes=16))


def test_batch_rows_rejections_and_offsets_land_together(store: FeedbackStore) -> None:
    assert write(store, [*values(["a", "b"]), b"junk"]) == (2, 1)
    assert store.stored_offsets("t") == {0: 3}
    summary = store_summary(store.con, "t", "p")
    assert (summary.rows, summary.rejected, summary.labels) == (2, 1, {"pos": 2})
    assert [(p.partition, p.next_offset) for p in summary.partitions] == [(0, 3)]
    rows = store.con.execute('SELECT row_id, id, "offset", episode FROM feedback ORDER BY row_id').fetchall()
    assert rows == [(1, "a", 0, 0), (2, "b", 1, 0)]


def test_repeated_id_keeps_the_first_record(store: FeedbackStore) -> None:
    write(store, values(["a", "b", "a"], label="first"))
    assert write(store, values(["b", "c"], label="second"), first_offset=3) == (1, 1)
    labels = dict(store.con.execute("SELECT id, label FROM feedback").fetchall())
    assert labels == {"a": "first", "b": "first", "c": "second"}
    reasons = [r.reason for r in recent_rejections(store.con, 10)]
    assert sorted(reasons) == [f"duplicate id {i}; the first record with this id is kept" for i in ("a", "b")]


def test_failed_batch_leaves_no_rows_and_no_offsets(store: FeedbackStore, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(offsets: object) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr(store, "_save_offsets", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        write(store, values(["a"]))
    assert (store_summary(store.con, "t", "p").rows, store.stored_offsets("t")) == (0, {})


def test_raw_bytes_of_rejections_are_capped(store: FeedbackStore) -> None:
    write(store, [b"\xff" * 100])
    raw, raw_bytes = store.con.execute("SELECT raw, raw_bytes FROM rejected").fetchone() or (b"", 0)
    assert (bytes(raw), raw_bytes) == (b"\xff" * 16, 100)


def test_split_is_the_md5_rule_of_the_id(store: FeedbackStore) -> None:
    ids = [f"id-{i}" for i in range(2_000)]
    write(store, values(ids))
    stored = dict(store.con.execute("SELECT id, split FROM feedback").fetchall())
    in_holdout = {i: int(hashlib.md5(i.encode()).hexdigest()[:8], 16) < 0.2 * 2**32 for i in ids}
    expected = {i: "holdout" if holdout else "train" for i, holdout in in_holdout.items()}
    assert stored == expected
    assert 300 < list(stored.values()).count("holdout") < 500


def test_rows_get_the_newest_episode(store: FeedbackStore) -> None:
    write(store, values(["a"]))
    store.con.execute("INSERT INTO episodes VALUES (1, now(), 2, 'drift event 1')")
    write(store, values(["b"]), first_offset=1)
    assert store.con.execute("SELECT id, episode FROM feedback ORDER BY row_id").fetchall() == [("a", 0), ("b", 1)]


def test_store_from_a_newer_driftloop_is_refused(store: FeedbackStore, store_path: Path) -> None:
    store.con.execute("UPDATE store_version SET version = 99")
    store.close()
    with pytest.raises(IngestError, match=f"has version 99; this driftloop reads version {STORE_VERSION}"):
        FeedbackStore(store_path, IngestSettings())


def test_a_version_1_store_is_migrated(store: FeedbackStore, store_path: Path) -> None:
    write(store, values(["a", "b"]))
    store.con.execute("ALTER TABLE kafka_offsets DROP COLUMN last_value_md5")
    for column in ("prediction_id", "kind", "confidence"):
        store.con.execute(f"ALTER TABLE feedback DROP COLUMN {column}")
    store.con.execute("UPDATE store_version SET version = 1")
    store.close()
    with FeedbackStore(store_path, IngestSettings()) as migrated:
        assert migrated.stored_positions("t") == {0: Position(2, None)}
        write(migrated, values(["c"]), first_offset=2)
        assert migrated.stored_positions("t") == {0: Position(3, hashlib.md5(values(["c"])[0]).hexdigest())}
        rows = migrated.con.execute("SELECT id, kind, prediction_id FROM feedback ORDER BY row_id").fetchall()
        assert rows == [("a", None, None), ("b", None, None), ("c", "label", None)]


def test_a_version_3_store_takes_predictions_without_confidence(store: FeedbackStore, store_path: Path) -> None:
    store.con.execute("ALTER TABLE predictions ALTER COLUMN confidence SET NOT NULL")
    store.con.execute("UPDATE store_version SET version = 3")
    store.close()
    with FeedbackStore(store_path, IngestSettings()) as migrated:
        nullable = migrated.con.execute(
            "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'predictions' "
            "AND column_name = 'confidence'"
        ).fetchall()
        assert nullable == [("YES",)]
        assert migrated.con.execute("SELECT version FROM store_version").fetchall() == [(STORE_VERSION,)]


def test_second_process_gets_a_clear_error(store: FeedbackStore, store_path: Path) -> None:
    script = (
        "from pathlib import Path; from ingest.store import FeedbackStore; from ingest.settings import IngestSettings\n"
        f"FeedbackStore(Path({str(store_path)!r}), IngestSettings())"
    )
    completed = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert completed.returncode != 0
    assert "Another driftloop process probably holds it" in completed.stderr


def test_a_record_the_check_cannot_get_through_is_rejected_alone(store: FeedbackStore) -> None:
    nanoseconds = json.dumps({"id": "p", "text": "t", "label": "x", "ts": 1732900000000000000}).encode()
    raw = [*values(["a", "b"]), nanoseconds, *values(["c", "d"])]
    assert write(store, raw) == (4, 1)
    (reason,) = [r.reason for r in recent_rejections(store.con, 10)]
    assert reason.startswith("field 'ts' is 1732900000000000000, not epoch milliseconds between 1970 and 2100")
    assert store.stored_offsets("t") == {0: 5}


def test_a_record_the_check_raises_on_is_rejected_with_the_error(
    store: FeedbackStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The seam: a check that raises on one record, as the unguarded epoch-nanosecond cast did.
    cast = "CAST(CASE WHEN c_id = 'boom' THEN 'x' ELSE '1' END AS INTEGER)"
    raising = CHECK_SQL.replace("c_id AS id,", f"CASE WHEN {cast} = 1 THEN c_id END AS id,")
    monkeypatch.setattr("ingest.records.CHECK_SQL", raising)
    checked_sql = prediction_log.CHECKED_FEEDBACK_SQL.replace(CHECK_SQL, raising)
    monkeypatch.setattr("ingest.store.CHECKED_FEEDBACK_SQL", checked_sql)
    monkeypatch.setitem(store_module.CHECKS, "feedback", raising)
    assert write(store, [*values(["a"]), *values(["boom"]), *values(["c"])]) == (2, 1)
    (reason,) = [r.reason for r in recent_rejections(store.con, 10)]
    assert reason.startswith("the record check failed on this record (ConversionException")
    assert sorted(store_summary(store.con, "t", "p").labels.items()) == [("pos", 2)]
    checked = check_values([*values(["a"]), *values(["boom"])], IngestSettings())
    assert [(c.id, c.reason is None) for c in checked] == [("a", True), (None, False)]
