"""The feedback and ingest commands against a real broker, as a user types them."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from click.testing import CliRunner, Result

from daemon.cli import cli, register_commands
from ingest.settings import KafkaSettings
from ingest.summary import store_summary
from tests.conftest import wait_until
from tests.ingest.kafka_helpers import cli_environment, good, produce

pytestmark = pytest.mark.kafka
register_commands()


def run(kafka: KafkaSettings, home: Path, *arguments: str) -> Result:
    flags = ["--home", str(home), "--set", f"kafka.bootstrap={kafka.bootstrap}", "--set", f"kafka.topic={kafka.topic}"]
    flags += ["--set", f"kafka.group_id={kafka.group_id}", "--set", "ingest.idle_exit_s=1.5"]
    return CliRunner().invoke(cli, [*flags, *arguments])


def test_send_load_ingest_stats_and_rejected(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run(kafka_settings, home, "topic", "create", "--partitions", "2").exit_code == 0
    sent = run(
        kafka_settings, home, "feedback", "send", "--text", " a  corrected\ttext ", "--label", "pos", "--id", "s1"
    )
    assert sent.exit_code == 0, sent.output
    refused = run(kafka_settings, home, "feedback", "send", "--text", "   ", "--label", "pos")
    assert refused.exit_code == 1
    assert refused.stderr.strip() == "driftloop: error: text is empty after whitespace normalisation"
    feedback = tmp_path / "feedback.jsonl"
    lines = ['{"id": "f1", "text": "one", "label": "neg"}', "", '{"id": "f2", "label": "neg"}']
    feedback.write_text("\n".join([*lines, '{"id": "f3", "text": "3", "label": "x"}']) + "\n")
    loaded = run(kafka_settings, home, "feedback", "load", str(feedback))
    assert loaded.exit_code == 0, loaded.output
    assert f"{feedback}:3: not sent: missing field 'text'" in loaded.stderr
    assert "sent 2 records" in loaded.stdout
    assert "skipped 1 bad lines" in loaded.stdout
    ingested = run(kafka_settings, home, "ingest", "--once")
    assert ingested.exit_code == 0, ingested.output
    assert "stored 3, rejected 0" in ingested.stdout
    stats = run(kafka_settings, home, "feedback", "stats")
    assert "stored 3" in stats.stdout
    assert stats.stdout.splitlines()[1] == "labels: 3"
    assert [line.split() for line in stats.stdout.splitlines()[2:5]] == [["neg", "1"], ["pos", "1"], ["x", "1"]]
    assert "kinds: label 3" in stats.stdout
    assert "prediction log: 0 predictions (0 with their text), 0 feedback waiting for its prediction" in stats.stdout


def test_rejected_lists_reasons(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    home = tmp_path / "home"
    produce(kafka_settings, [good(1), b"{broken"])
    assert run(kafka_settings, home, "ingest", "--once").exit_code == 0
    listed = run(kafka_settings, home, "feedback", "rejected")
    assert "not JSON: {broken" in listed.stdout


def test_sigterm_during_ingest_finishes_the_batch_and_exits_0(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    home, log = tmp_path / "home", tmp_path / "ingest.log"
    produce(kafka_settings, [good(i) for i in range(2_000)])
    env = cli_environment(kafka_settings, home, INGEST_BATCH_MAX_RECORDS="200")
    with open(log, "wb") as output:
        process = subprocess.Popen([sys.executable, "-m", "daemon", "ingest"], env=env, stdout=output, stderr=output)
    wait_until(lambda: "assigned partitions" in log.read_text(), 60, "the partitions to be assigned")
    produce(kafka_settings, [json.dumps({"id": f"late{i}", "text": "t", "label": "l"}).encode() for i in range(3_000)])
    process.send_signal(signal.SIGTERM)
    started = time.monotonic()
    assert process.wait(timeout=30) == 0
    assert time.monotonic() - started < 15
    text = log.read_text()
    assert "SIGTERM received" in text
    assert "ingest stopped" in text
    with duckdb.connect(str(home / "driftloop.duckdb"), read_only=True) as con:
        stored = store_summary(con, kafka_settings.topic, kafka_settings.predictions_topic)
    assert stored.rows == sum(partition.next_offset for partition in stored.partitions) > 0
