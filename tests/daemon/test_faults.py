"""Faults around the daemon: killed during training, a training run that fails, a broker outage, SIGTERM during
ingest. After each, no feedback row is lost or doubled and the production model is untouched."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ingest import history
from ingest.broker import LocalBroker
from ingest.settings import KafkaSettings
from tests.conftest import EXTERNAL_BROKER
from tests.daemon import loop_helpers as loop
from tests.ingest.kafka_helpers import good, produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

BOOTSTRAP_ROWS = 600
SHIFT_ROWS = 300 + 700
SHUTDOWN = ["shutdown: ingest stopped", "shutdown: closing the admin API", "shutdown: closing the store",
            "shutdown complete"]  # fmt: skip


def environment(tmp_path: Path, kafka: KafkaSettings, base: Path | None = None, **extra: str) -> dict[str, str]:
    """`loop.environment` with the request timeout of `kafka` (short, for Tansu); no base model unless given."""
    timeout = str(kafka.request_timeout_ms)
    return loop.environment(tmp_path / "home", base or tmp_path / "no-model", kafka, KAFKA_REQUEST_TIMEOUT_MS=timeout,
                            **extra)  # fmt: skip


def own_topic(broker: LocalBroker, request_timeout_ms: int) -> KafkaSettings:
    """A topic and group of their own on `broker`, whose process the test pauses."""
    suffix = uuid.uuid4().hex[:10]
    return KafkaSettings(bootstrap=broker.bootstrap, topic=f"outage-{suffix}", group_id=f"group-{suffix}",
                         request_timeout_ms=request_timeout_ms)  # fmt: skip


def drifted_home(tmp_path: Path, kafka: KafkaSettings) -> dict[str, str]:
    """v1 in production, then stored rows whose vocabulary shifts and whose served predictions go wrong, checked
    into a drift event with no daemon running; the environment of that home."""
    env = environment(tmp_path, kafka, loop.tiny_base(tmp_path / "base"))
    first = loop.write_jsonl(tmp_path / "v1.jsonl", loop.records(0, BOOTSTRAP_ROWS, 0))
    loop.cli(env, "bootstrap", "--data", str(first))
    loop.store_records(env, "shift", loop.records(0, 300, 1, "right") + loop.records(1, 700, 2, "wrong-half"))
    loop.cli(env, "drift", "check")
    stored = loop.status(env)
    assert stored["drift"]["events_stored"] >= 1, stored["drift"]
    assert stored["ingest"]["rows"] == BOOTSTRAP_ROWS + SHIFT_ROWS
    return env


def query(env: dict[str, str], sql: str) -> list[tuple[Any, ...]]:
    """Rows from the store file, read directly (no daemon may hold it)."""
    with duckdb.connect(str(Path(env["DRIFTLOOP_HOME"]) / "driftloop.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def assert_rows_intact(env: dict[str, str], expected: int) -> None:
    with duckdb.connect(str(Path(env["DRIFTLOOP_HOME"]) / "driftloop.duckdb"), read_only=True) as con:
        ids = [row.id for row in history.training_rows(con, history.UNBOUNDED)]
    assert (len(ids), len(set(ids))) == (expected, expected)


def drift_runs(env: dict[str, str]) -> list[tuple[Any, ...]]:
    """(id, drift_row_id, episode, attempt, status, reason) of every drift-triggered run, oldest first."""
    sql = "SELECT id, drift_row_id, episode, attempt, status, reason FROM training_runs WHERE trigger = 'drift'"
    return query(env, f"{sql} ORDER BY id")


def assert_only_v1(env: dict[str, str]) -> None:
    assert loop.status(env)["models"]["production"] == "v1"
    listed = [line.split()[0] for line in loop.cli(env, "models").stdout.splitlines() if line.strip()]
    assert listed == ["v1"]


def worker_alive(pid: int) -> bool:
    """Whether `pid` is a live training process (a zombie waiting for init to reap it counts as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X") and b"trainer.worker" in command


def training(running: loop.RunningDaemon, env: dict[str, str], what: str) -> dict[str, Any]:
    """The daemon's active run (run id, pid, progress), once its training process reports optimizer steps."""
    seen: list[dict[str, Any]] = []

    def stepping() -> bool:
        live = loop.live_status(env)
        active = None if live is None else live["training"]["active"]
        if active is not None and active["progress"].get("event") in ("progress", "validation"):
            seen.append(active)
        return bool(seen)

    running.wait_until(stepping, 120, what)
    return seen[0]


def rows(env: dict[str, str]) -> int:
    """Feedback rows stored, from the running daemon's socket, else from the store file."""
    live = loop.live_status(env)
    return int((live or loop.status(env))["ingest"]["rows"])


def test_daemon_killed_during_training_aborts_the_run_and_retries_it(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    env = drifted_home(tmp_path, kafka_settings)
    long = {**env, "DRIFTLOOP_TRAINER_MAX_EPOCHS": "400", "DRIFTLOOP_TRAINER_PATIENCE": "400"}
    log = tmp_path / "daemon.log"
    orphan = 0
    try:
        with loop.daemon(long, log) as killed:
            orphan = training(killed, env, "the drift's training run to train")["pid"]
            first = loop.last_run(env)
            assert first is not None
            # Frozen, the child cannot die of its closed progress pipe before the restart finds it.
            os.kill(orphan, signal.SIGSTOP)
            killed.process.kill()
            killed.process.wait(timeout=30)
        assert worker_alive(orphan), "the training process outlives the killed daemon"

        with loop.daemon(long, log) as restarted:
            restarted.wait_until(lambda: loop.live_status(env) is not None, 60, "the restarted daemon to answer")
            restarted.wait_until(lambda: not worker_alive(orphan), 30, "the orphaned training process to be killed")
            retry_pid = training(restarted, env, "the retry to train")["pid"]
            retry = loop.last_run(env)
            assert retry is not None
            assert (retry["id"], retry["status"], retry["attempt"]) == (first["id"] + 1, "running", 2)
            assert (retry["drift_row_id"], retry["episode"]) == (first["drift_row_id"], first["episode"])
            assert_only_v1(env)
            assert loop.status(env)["ingest"]["rows"] == BOOTSTRAP_ROWS + SHIFT_ROWS
            assert restarted.stop() == 0, restarted.tail()
    finally:
        if orphan and worker_alive(orphan):
            os.kill(orphan, signal.SIGKILL)

    stopping = f"shutdown: stopping training run {retry['id']} (pid {retry_pid})"
    assert loop.shutdown_steps(log)[-5:] == [SHUTDOWN[0], stopping, *SHUTDOWN[1:]]
    stopped = loop.last_run(env)
    assert stopped is not None
    assert (stopped["id"], stopped["status"]) == (retry["id"], "interrupted"), stopped
    aborted = drift_runs(env)[0]
    assert aborted[:5] == (first["id"], first["drift_row_id"], first["episode"], 1, "aborted")
    assert f"the daemon stopped during the run; its training process {orphan}, still running, was killed" in aborted[5]
    assert_only_v1(env)
    assert_rows_intact(env, BOOTSTRAP_ROWS + SHIFT_ROWS)


def test_training_failure_is_recorded_retried_then_left(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    env = drifted_home(tmp_path, kafka_settings)
    broken = tmp_path / "no-such-model"
    failing = {**env, "DRIFTLOOP_TRAINER_BASE_MODEL": str(broken)}
    log = tmp_path / "daemon.log"
    with loop.daemon(failing, log) as running:

        def finished() -> dict[str, int]:
            live = loop.live_status(env)
            return {} if live is None or live["training"]["active"] else live["training"]["runs_by_status"]

        running.wait_until(lambda: finished().get("failed") == 2, 120, "two failed runs")
        for _ in range(3):  # training checks run every second: none may start a third run
            time.sleep(1)
            assert finished() == {"submitted": 1, "failed": 2}, running.tail()
        answered = loop.status(env)
        assert answered["training"]["runs_by_status"] == {"submitted": 1, "failed": 2}, running.tail()
        assert answered["training"]["active"] is None
        assert str(broken) in answered["training"]["last_run"]["reason"]
        assert_only_v1(env)
        assert answered["ingest"]["rows"] == BOOTSTRAP_ROWS + SHIFT_ROWS
        assert running.stop() == 0, running.tail()
    assert loop.shutdown_steps(log) == SHUTDOWN

    failed = drift_runs(env)
    assert [(attempt, status) for _, _, _, attempt, status, _ in failed] == [(1, "failed"), (2, "failed")]
    assert failed[0][1:3] == failed[1][1:3], "both attempts answer the same drift event in the same episode"
    assert all(str(broken) in reason for *_, reason in failed), failed
    assert_only_v1(env)
    assert_rows_intact(env, BOOTSTRAP_ROWS + SHIFT_ROWS)


@pytest.mark.skipif(bool(EXTERNAL_BROKER), reason="pauses a broker process of its own")
def test_broker_stopped_for_30_s_mid_stream(tmp_path: Path) -> None:
    with LocalBroker(log_file=tmp_path / "broker.log") as broker:
        kafka = own_topic(broker, request_timeout_ms=5_000)
        env = environment(tmp_path, kafka)
        log = tmp_path / "daemon.log"
        with loop.daemon(env, log) as running:
            produce(kafka, [good(i) for i in range(1_000)])
            running.wait_until(lambda: rows(env) == 1_000, 60, "the first thousand")
            broker.pause()
            try:
                answered = 0
                resume_at = time.monotonic() + 30
                while time.monotonic() < resume_at:
                    assert running.process.poll() is None, running.tail()
                    answered += loop.status(env)["ingest"]["rows"] == 1_000
                    time.sleep(1)
            finally:
                broker.resume()
            assert answered, "the daemon answers `status` while the broker is away"
            produce(kafka, [good(i) for i in range(1_000, 2_000)])
            running.wait_until(lambda: rows(env) == 2_000, 120, "the records sent after the outage")
            assert running.stop() == 0, running.tail()
    assert loop.shutdown_steps(log) == SHUTDOWN
    assert_rows_intact(env, 2_000)


def test_sigterm_during_ingest_loses_nothing(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    # Small batches, so the signal finds most of the topic still to come: in 20,000-record batches (the default)
    # the second and last batch is already in flight when the first shows in `status`.
    env = environment(tmp_path, kafka_settings, INGEST_BATCH_MAX_RECORDS="500")
    log = tmp_path / "daemon.log"
    produced = 30_000
    produce(kafka_settings, [good(i) for i in range(produced)])
    with loop.daemon(env, log) as running:
        running.wait_until(lambda: rows(env) > 0, 60, "the first batch")
        while rows(env) >= produced:  # all in already: give it more, so a batch is in flight at the signal
            produce(kafka_settings, [good(i) for i in range(produced, produced + 10_000)])
            produced += 10_000
        assert running.stop(timeout_s=30) == 0, running.tail()
    assert loop.shutdown_steps(log) == SHUTDOWN
    interrupted = rows(env)
    assert 0 < interrupted < produced, "the signal came while the topic was being drained"
    drained = loop.cli(env, "ingest", "--once")
    assert f"stored {produced - interrupted}, rejected 0" in drained.stdout
    assert_rows_intact(env, produced)


@pytest.mark.skipif(bool(EXTERNAL_BROKER), reason="pauses a broker process of its own")
def test_sigterm_while_the_broker_is_stopped_exits_in_time(tmp_path: Path) -> None:
    # Mid-stream in small batches, so the pause finds a Kafka commit or a poll waiting on the frozen broker.
    with LocalBroker(log_file=tmp_path / "broker.log") as broker:
        kafka = own_topic(broker, request_timeout_ms=60_000)
        env = environment(tmp_path, kafka, INGEST_BATCH_MAX_RECORDS="200")
        log = tmp_path / "daemon.log"
        produce(kafka, [good(i) for i in range(20_000)])
        with loop.daemon(env, log) as running:
            running.wait_until(lambda: rows(env) > 0, 60, "the first batch")
            broker.pause()
            try:
                # the daemon's own budget: reader 30 s to close, then killed; what matters is that it ends
                assert running.stop(timeout_s=45) == 0, running.tail()
            finally:
                broker.resume()
        assert loop.shutdown_steps(log) == SHUTDOWN
        drained = loop.cli(env, "ingest", "--once")
        assert drained.returncode == 0, drained.stderr
    assert_rows_intact(env, 20_000)
