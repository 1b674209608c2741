"""The soak's inputs, and the soak itself in its quick form: kills of every kind, nothing lost or duplicated."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.soak_inputs import BAD_KINDS, KAFKA_TIMESTAMPS, SOAK_INGEST, bad_record, first_record
from ingest.records import incoming_table
from ingest.settings import IngestSettings
from ingest.store import FeedbackStore
from tests.conftest import EXTERNAL_BROKER

ROOT = Path(__file__).resolve().parents[2]


def test_every_bad_kind_is_rejected_and_the_first_record_kept(tmp_path: Path) -> None:
    limits = {key.removeprefix("INGEST_").lower(): int(value) for key, value in SOAK_INGEST.items()}
    sent = [first_record()] + [bad_record(kind, n) for n, kind in enumerate(BAD_KINDS, start=1)]
    now_ms = int(time.time() * 1000)
    table = incoming_table([record.value for record in sent], "soak", offsets=list(range(len(sent))),
                           timestamps_ms=[record.timestamp_ms or now_ms for record in sent])  # fmt: skip
    with FeedbackStore(tmp_path / "store.duckdb", IngestSettings.model_validate(limits)) as store:
        result = store.write_batch(table, {("soak", 0): len(sent)})
        rejected = dict(store.con.execute('SELECT "offset", reason FROM rejected').fetchall())
    assert (result.stored, result.rejected) == (1, len(BAD_KINDS))
    assert len(BAD_KINDS) >= 25
    assert set(rejected) == set(range(1, len(sent)))
    assert rejected[list(BAD_KINDS).index("Kafka timestamp after 2100") + 1].startswith("no field 'ts' and the Kafka")
    assert set(KAFKA_TIMESTAMPS) <= set(BAD_KINDS)


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.skipif(bool(EXTERNAL_BROKER), reason="pauses a broker process of its own")
def test_quick_soak_loses_nothing_under_kills_of_every_kind() -> None:
    done = subprocess.run([sys.executable, "bench/soak.py", "--quick"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, check=False)  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert (report["lost"], report["duplicated"], report["stuck_runs"], report["orphans"]) == (0, 0, 0, 0)
    assert (report["bad_stored"], report["good_rejected"]) == (0, 0)
    assert report["served_matches_registry"] is True
    assert report["status_answers"] is True
    assert set(report["kill_kinds"]) == {"reader", "store process", "daemon", "training worker", "service"}
    assert report["broker_pauses"] == 1
    assert report["bad_kinds"] >= 25
    assert report["records_sent"] > 500
