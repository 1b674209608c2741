"""The whole loop with a tiny model: labelled texts whose vocabulary shifts, a daemon process, the CLI."""

from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from daemon.loop.admin import SOCKET_NAME, ask
from ingest.records import incoming_table
from ingest.settings import IngestSettings, KafkaSettings
from ingest.store import FeedbackStore
from tests.conftest import wait_until
from tests.tiny_bert import save_tiny_bert

LABELS = ("alpha", "beta")
BAND = 15  # words per (period, label) band
WORDS = [f"w{i}" for i in range(BAND * 4)]


def text(label: str, period: int, rng: random.Random) -> str:
    """Words of the label's band; period 1 uses bands no period-0 text has (a vocabulary shift)."""
    band = (period * len(LABELS) + LABELS.index(label)) * BAND
    return " ".join(f"w{band + rng.randrange(BAND)}" for _ in range(rng.randint(4, 9)))


def records(period: int, count: int, seed: int, prediction: str | None = None) -> list[dict[str, Any]]:
    """`count` labelled records of a period; `prediction` "right" or "wrong-half" stands in for a served model."""
    rng = random.Random(f"{period}-{seed}")
    out = []
    for i in range(count):
        label = LABELS[i % 2]
        record: dict[str, Any] = {"id": f"p{period}-s{seed}-{i}", "text": text(label, period, rng), "label": label}
        if prediction == "right":
            record["prediction"] = label
        elif prediction == "wrong-half":
            record["prediction"] = label if rng.random() < 0.5 else LABELS[1 - i % 2]
        out.append(record)
    return out


def write_jsonl(path: Path, items: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(item) + "\n" for item in items))
    return path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def environment(home: Path, base: Path, kafka: KafkaSettings, **extra: str) -> dict[str, str]:
    """Settings for a fast loop: a tiny model, checks every second, small drift windows, a lenient gate."""
    values = {
        "HOME": str(home),
        "KAFKA_BOOTSTRAP": kafka.bootstrap,
        "KAFKA_TOPIC": kafka.topic,
        "KAFKA_PREDICTIONS_TOPIC": kafka.predictions_topic,
        "DRIFT_STREAM": "feedback",  # these tests send feedback, no served traffic
        "KAFKA_GROUP_ID": kafka.group_id,
        "TRAINER_BASE_MODEL": str(base),
        "TRAINER_MAX_LENGTH": "32",
        "TRAINER_STRIDE": "8",
        "TRAINER_BATCH_SIZE": "16",
        "TRAINER_GRAD_ACCUMULATION": "1",
        "TRAINER_LEARNING_RATE": "0.03",
        "TRAINER_HEAD_LEARNING_RATE": "0.03",
        "TRAINER_MAX_EPOCHS": "6",
        "TRAINER_REPLAY_SIZE": "300",
        "TRAINER_TORCH_THREADS": "1",
        "TRAINER_LATENCY_SAMPLES": "5",
        "TRAINER_LOG_EVERY_STEPS": "2",
        "DRIFT_WARMUP_ROWS": "200",
        "DRIFT_WINDOW_ROWS": "100",
        "DRIFT_MIN_WINDOW_ROWS": "50",
        "DRIFT_COOLDOWN_ROWS": "100",
        "DAEMON_DRIFT_CHECK_INTERVAL_S": "1",
        "DAEMON_TRAINING_CHECK_INTERVAL_S": "1",
        "DAEMON_MIN_NEW_ROWS": "300",
        "DAEMON_METRICS_PORT": "0",
        "REGISTRY_TASK": "loop",
        "REGISTRY_GATE_EPSILON": "0.1",
        "REGISTRY_GATE_BOOTSTRAP_SAMPLES": "200",
        "INGEST_LAG_INTERVAL_S": "1",
        **extra,
    }
    prefixed = {f"DRIFTLOOP_{key}": value for key, value in values.items()}
    return {**os.environ, "BENTOML_DO_NOT_TRACK": "True", **prefixed}


def tiny_base(folder: Path) -> Path:
    return save_tiny_bert(folder, WORDS, max_positions=64)


def cli(env: dict[str, str], *arguments: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "daemon", *arguments], env=env, capture_output=True, text=True,
                          check=False, timeout=300)  # fmt: skip
    if check:
        assert done.returncode == 0, f"driftloop {' '.join(arguments)}: {done.stdout}\n{done.stderr}"
    return done


def status(env: dict[str, str]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(cli(env, "status", "--json").stdout)
    return parsed


def store_records(env: dict[str, str], name: str, items: list[dict[str, Any]]) -> None:
    """Write records into the store through its real checks (no daemon may run), as if ingested from `name`."""
    lines = [json.dumps(item).encode() for item in items]
    table = incoming_table(lines, f"file:{name}", timestamps_ms=[int(time.time() * 1000)] * len(lines))
    with FeedbackStore(Path(env["DRIFTLOOP_HOME"]) / "driftloop.duckdb", IngestSettings()) as store:
        store.write_batch(table, {})


@dataclass
class RunningDaemon:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout_s: float = 60) -> int:
        self.process.terminate()
        return self.process.wait(timeout=timeout_s)

    def tail(self, chars: int = 8_000) -> str:
        """The end of the daemon's log, for assertion messages."""
        return self.log.read_text(errors="replace")[-chars:]

    def wait_until(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        """`tests.conftest.wait_until` that fails at once when the daemon exits, with its log in the message."""

        def running_and() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the daemon exited with code {self.process.returncode}")
            return condition()

        try:
            wait_until(running_and, timeout_s, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- daemon log (end) ---\n{self.tail()}") from None


@contextmanager
def daemon(env: dict[str, str], log: Path) -> Iterator[RunningDaemon]:
    with open(log, "ab") as output:
        process = subprocess.Popen([sys.executable, "-m", "daemon", "run"], env=env, stdout=output, stderr=output)
    running = RunningDaemon(process, log)
    try:
        wait_until((Path(env["DRIFTLOOP_HOME"]) / "admin.sock").exists, 60, "the daemon's admin socket")
        yield running
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def live_status(env: dict[str, str]) -> dict[str, Any] | None:
    """The running daemon's status straight from its socket (no CLI process: fast to poll); None while none answers."""
    answer = ask(Path(env["DRIFTLOOP_HOME"]) / SOCKET_NAME, "operation", operation="status", arguments={})
    if answer is None:
        return None
    assert answer["ok"], answer
    result: dict[str, Any] = answer["result"]
    return result


def shutdown_steps(log: Path) -> list[str]:
    """The daemon's `shutdown: ...` log lines, in order, each up to its first semicolon."""
    messages = [line.split(": ", 1)[1] for line in log.read_text().splitlines() if "shutdown" in line and ": " in line]
    return [message.split(";")[0] for message in messages if message.startswith("shutdown")]


def last_run(env: dict[str, str]) -> dict[str, Any] | None:
    run: dict[str, Any] | None = status(env)["training"]["last_run"]
    return run
