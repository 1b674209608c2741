"""`driftloop run`: the admin socket answers `status`, only its owner can open it, SIGTERM stops it in order."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ingest.records import incoming_table
from ingest.settings import IngestSettings, KafkaSettings
from ingest.store import FeedbackStore
from tests.conftest import wait_until
from tests.daemon import loop_helpers as loop
from tests.ingest.kafka_helpers import cli_environment, good, produce, running, spawned_children

pytestmark = pytest.mark.kafka


def cli(env: dict[str, str], *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "daemon", *arguments], env=env, capture_output=True, text=True, check=False
    )


def test_daemon_status_over_the_socket_then_ordered_shutdown(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_environment(kafka_settings, home, DAEMON_DRIFT_CHECK_INTERVAL_S="1", INGEST_LAG_INTERVAL_S="1")
    produce(kafka_settings, [good(i) for i in range(300)] + [b"junk"])
    log = tmp_path / "daemon.log"
    with open(log, "wb") as output:
        daemon = subprocess.Popen([sys.executable, "-m", "daemon", "run"], env=env, stdout=output, stderr=output)
    try:
        socket_path = home / "admin.sock"
        wait_until(socket_path.exists, 60, "the admin socket")
        assert stat.S_IMODE(socket_path.stat().st_mode) == 0o600

        def status() -> dict[str, object]:
            answer = cli(env, "status", "--json")
            assert answer.returncode == 0, answer.stderr
            parsed: dict[str, object] = json.loads(answer.stdout)
            return parsed

        wait_until(lambda: _rows(status()) == 300, 60, "the records to be ingested")
        wait_until(lambda: _drift_rows(status()) == 300, 30, "a drift check over the rows")

        def lag() -> dict[str, int]:
            found: dict[str, dict[str, int]] = status()["daemon"]["lag"]  # type: ignore[index]
            return found.get(kafka_settings.topic, {})

        wait_until(lambda: set(lag()) == {"0", "1"}, 30, "the lag of both partitions")
        live = status()
        assert live["ingest"]["rejected"] == 1  # type: ignore[index]
        table = cli(env, "status")
        assert "daemon: running" in table.stdout
        assert_store_commands_answer(env, tmp_path / "chart.png")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    steps = [line.split(": ", 1)[1] for line in log.read_text().splitlines() if "shutdown" in line and ": " in line]
    assert [step.split(";")[0] for step in steps if step.startswith("shutdown")] == [
        "shutdown: ingest stopped",
        "shutdown: closing the admin API",
        "shutdown: closing the store",
        "shutdown complete",
    ]
    offline = cli(env, "status", "--json")
    assert offline.returncode == 0, offline.stderr
    stopped = json.loads(offline.stdout)
    assert "daemon" not in stopped
    assert stopped["ingest"]["rows"] == 300
    assert not (home / "admin.sock").exists()


def assert_store_commands_answer(env: dict[str, str], chart: Path) -> None:
    """Every command that reads the store answers while the daemon holds the file (asked over the socket)."""
    answers = {
        "drift status": cli(env, "drift", "status", "--json"),
        "drift check": cli(env, "drift", "check"),
        "drift backtest": cli(env, "drift", "backtest", "--json"),
        "feedback stats": cli(env, "feedback", "stats"),
        "feedback rejected": cli(env, "feedback", "rejected"),
        "models": cli(env, "models"),
        "chart": cli(env, "chart", "--out", str(chart), "--window", "50"),
    }
    assert {name: answer.stderr for name, answer in answers.items() if answer.returncode != 0} == {}
    assert json.loads(answers["drift status"].stdout)["rows_seen"] == 300
    assert answers["drift check"].stdout.startswith("0 new rows checked")
    assert json.loads(answers["drift backtest"].stdout)["scores"][0]["name"] == "driftloop"
    assert answers["feedback stats"].stdout.startswith("stored 300 (")
    assert "not JSON" in answers["feedback rejected"].stdout
    assert answers["models"].stdout.strip() == "no models"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _rows(status: dict[str, object]) -> object:
    return status["ingest"]["rows"]  # type: ignore[index]


def _drift_rows(status: dict[str, object]) -> object:
    return status["drift"]["rows_seen"]  # type: ignore[index]


def test_ingest_that_cannot_go_on_halts_alone(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = cli_environment(kafka_settings, home)
    produce(kafka_settings, [good(i) for i in range(10)], partitions=1)
    with FeedbackStore(home / "driftloop.duckdb", IngestSettings()) as store:  # as a recreated topic leaves it
        store.write_batch(incoming_table([], kafka_settings.topic), {(kafka_settings.topic, 0): 1_000_000})
    log = tmp_path / "daemon.log"
    with open(log, "wb") as output:
        daemon = subprocess.Popen([sys.executable, "-m", "daemon", "run"], env=env, stdout=output, stderr=output)
    try:

        def halted() -> object:
            answer = cli(env, "status", "--json")
            running = json.loads(answer.stdout).get("daemon") if answer.returncode == 0 else None
            return None if running is None else running["ingest_halted"]

        wait_until(lambda: bool(halted()), 60, "ingest to halt")
        assert "ingest.offset_out_of_range" in str(halted())
        assert daemon.poll() is None, "the daemon runs on"
        table = cli(env, "status").stdout
        assert "ingest: HALTED (OffsetOutOfRange: the stored offset 1000000" in table
        assert cli(env, "drift", "status").returncode == 0
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert "ingest halted; the rest of the daemon runs on" in log.read_text()


def test_a_killed_reader_is_replaced_and_ingest_goes_on(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    env = cli_environment(kafka_settings, tmp_path / "home", INGEST_LAG_INTERVAL_S="1")
    produce(kafka_settings, [good(i) for i in range(100)])
    log = tmp_path / "daemon.log"
    with loop.daemon(env, log) as daemon:

        def live(section: str, key: str) -> Any:
            return (loop.live_status(env) or {}).get(section, {}).get(key)

        daemon.wait_until(lambda: live("ingest", "rows") == 100, 90, "the first hundred")
        (reader,) = spawned_children(daemon.process.pid)
        os.kill(reader, signal.SIGKILL)
        daemon.wait_until(lambda: live("daemon", "reader_restarts") == 1, 60, "a new reader")
        produce(kafka_settings, [good(i) for i in range(100, 200)])
        daemon.wait_until(lambda: live("ingest", "rows") == 200, 90, "the records sent after the kill")
        assert live("daemon", "ingest_halted") is None
        (replacement,) = spawned_children(daemon.process.pid)
        assert replacement != reader
        assert not running(reader)
        assert daemon.stop() == 0
    assert "the Kafka reader process ended without a word (exit code -9); " in log.read_text()
