"""Soak: a broker, the daemon and the service run for a set time while a producer sends good records and every kind
of bad one, and at random moments the Kafka reader, the store's process, the whole daemon, a training worker and
the service are SIGKILLed and the broker SIGSTOPped; each is restarted as a supervisor would (the daemon replaces
its reader and retries a killed run itself). At the end:

- every (partition, offset) of the topic is in `feedback` or `rejected` exactly once, good records in `feedback`
  and bad ones in `rejected`;
- no training run is left `running`, and the daemon stops on SIGTERM with exit code 0;
- the service serves the registry's production model;
- no process of the soak is left behind, and `driftloop status` answers.

    python bench/soak.py             # 20 minutes on the packaged MiniLM-L6
    python bench/soak.py --quick     # under 3 minutes on a tiny model (part of `make test`)

The last line is JSON: records_sent, lost, duplicated, kills, kill_kinds, broker_pauses, bad_kinds, stuck_runs,
served_matches_registry, seconds (and more). A disk quota is not filled: that needs a mount only root can make.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# `python bench/soak.py` puts bench/ first on sys.path, where bench/ingest.py would shadow the ingest package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import duckdb  # noqa: E402
from kafka import KafkaConsumer, TopicPartition  # noqa: E402
from kafka.errors import KafkaError  # noqa: E402

from bench.soak_inputs import BAD_KINDS, SOAK_INGEST, Outgoing, bad_record, first_record, good_record  # noqa: E402
from daemon.serving import client as service_client  # noqa: E402
from ingest.broker import LocalBroker  # noqa: E402
from ingest.kafka_clients import connection_config, ensure_topics, feedback_producer  # noqa: E402
from ingest.settings import KafkaSettings  # noqa: E402
from tests.daemon import loop_helpers as loop  # noqa: E402
from tests.ingest.kafka_helpers import running, spawned_children  # noqa: E402

KILL_KINDS = ("reader", "store process", "daemon", "training worker", "service")
BOOTSTRAP_ROWS = 600
PARTITIONS = 2


@dataclass(frozen=True)
class Plan:
    chaos_s: float  # how long records are sent and things killed
    period_s: float  # how long each vocabulary lasts (every change is a shift the daemon should train on)
    records_per_s: float
    bad_every: int  # one bad record per this many good ones
    kills_per_kind: int
    broker_pauses: int
    pause_s: float
    settle_s: float  # most time to catch up, converge and stop after the chaos
    max_epochs: int  # long enough that a training worker is there to be killed, short enough for several runs


QUICK = Plan(chaos_s=70, period_s=22, records_per_s=30, bad_every=8, kills_per_kind=1, broker_pauses=1,
             pause_s=15, settle_s=60, max_epochs=30)  # fmt: skip
FULL = Plan(chaos_s=1_140, period_s=150, records_per_s=40, bad_every=10, kills_per_kind=3, broker_pauses=2,
            pause_s=30, settle_s=240, max_epochs=3)  # fmt: skip


@dataclass
class Processes:
    """The daemon and the service, started in sessions of their own so that a kill can take a whole group."""

    env: dict[str, str]
    logs: Path
    service_port: int
    daemon: subprocess.Popen[bytes] | None = None
    service: subprocess.Popen[bytes] | None = None
    restarts: Counter[str] = field(default_factory=Counter)

    def start_daemon(self) -> None:
        self.daemon = self._start("daemon", ["run"])

    def start_service(self) -> None:
        self.service = self._start("service", ["serve", "--port", str(self.service_port)])

    def _start(self, name: str, arguments: list[str]) -> subprocess.Popen[bytes]:
        self.restarts[name] += 1
        with open(self.logs / f"{name}.log", "ab") as output:
            return subprocess.Popen([sys.executable, "-m", "daemon", *arguments], env=self.env, stdout=output,
                                    stderr=output, start_new_session=True)  # fmt: skip

    def daemon_pid(self) -> int | None:
        return self.daemon.pid if self.daemon is not None and self.daemon.poll() is None else None


class Producer(threading.Thread):
    """Sends the stream until stopped, remembering what each acknowledged (partition, offset) held."""

    def __init__(self, kafka: KafkaSettings, plan: Plan, seed: int) -> None:
        super().__init__(name="soak-producer", daemon=True)
        self.kafka, self.plan = kafka, plan
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.acked: dict[tuple[int, int], str] = {}  # (partition, offset) -> "good" or the bad kind
        self.failed_sends = 0
        self.started = time.monotonic()

    def run(self) -> None:
        producer = feedback_producer(self.kafka)
        kinds = list(BAD_KINDS)
        sent = bad = 0
        try:
            self._send(producer, first_record())
            while not self.stop.is_set():
                period = int((time.monotonic() - self.started) // self.plan.period_s)
                sent += 1
                self._send(producer, good_record(sent, period, self.rng))
                if sent % self.plan.bad_every == 0:
                    bad += 1
                    self._send(producer, bad_record(kinds[bad % len(kinds)], bad))
                self.stop.wait(1 / self.plan.records_per_s)
            producer.flush(timeout=30)
        finally:
            producer.close(timeout=10)

    def _send(self, producer: Any, record: Outgoing) -> None:
        """Send until acknowledged (the broker may be paused); a send that timed out may still have landed,
        which the final check allows for by reading the topic's own offsets."""
        while True:
            try:
                sending = producer.send(self.kafka.topic, key=record.key, value=record.value,
                                        timestamp_ms=record.timestamp_ms)  # fmt: skip
                metadata = sending.get(timeout=20)
            except KafkaError:
                self.failed_sends += 1
                if self.stop.wait(1):
                    return
                continue
            self.acked[(metadata.partition, metadata.offset)] = record.kind
            return


class Chaos:
    """Kills and pauses at random moments of the chaos period, each followed by what a supervisor would do."""

    def __init__(self, processes: Processes, broker: LocalBroker, plan: Plan, seed: int) -> None:
        self.processes, self.broker, self.plan = processes, broker, plan
        self.kills: Counter[str] = Counter()
        self.pauses = 0
        self.skipped: list[str] = []
        rng = random.Random(seed)
        actions = [kind for kind in KILL_KINDS for _ in range(plan.kills_per_kind)] + ["pause"] * plan.broker_pauses
        rng.shuffle(actions)
        step = plan.chaos_s * 0.8 / len(actions)
        self.schedule = [(plan.chaos_s * 0.1 + i * step + rng.uniform(0, step / 2), action)
                         for i, action in enumerate(actions)]  # fmt: skip

    def run(self, started: float, deadline: float) -> None:
        pending = list(self.schedule)
        while pending:
            at, action = pending.pop(0)
            time.sleep(max(0.0, started + at - time.monotonic()))
            if self._act(action):
                continue
            if time.monotonic() + 3 < deadline:
                pending.append((at + 3, action))  # nothing to kill yet (no training run): try again soon
                pending.sort()
            else:
                self.skipped.append(action)

    def _act(self, action: str) -> bool:
        processes = self.processes
        pid = processes.daemon_pid()
        if action == "pause":
            self.broker.pause()
            time.sleep(self.plan.pause_s)
            self.broker.resume()
            self.pauses += 1
            return True
        if action == "service":
            assert processes.service is not None
            os.killpg(processes.service.pid, signal.SIGKILL)
            processes.service.wait()
            processes.start_service()
        elif pid is None:
            return False
        elif action == "reader":
            readers = spawned_children(pid)
            if not readers:
                return False
            os.kill(readers.pop(), signal.SIGKILL)
        elif action == "training worker":
            active = (loop.live_status(processes.env) or {}).get("training", {}).get("active")
            if not active:
                return False
            os.kill(active["pid"], signal.SIGKILL)
        else:  # "store process": the daemon's main process alone; "daemon": its whole group
            assert processes.daemon is not None
            if action == "daemon":
                os.killpg(pid, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
            processes.daemon.wait()
            time.sleep(1)
            processes.start_daemon()
        self.kills[action] += 1
        log(f"killed the {action}")
        return True


def log(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", flush=True)


def topic_ends(kafka: KafkaSettings) -> dict[int, int]:
    consumer = KafkaConsumer(**connection_config(kafka))
    try:
        partitions = [TopicPartition(kafka.topic, p) for p in sorted(consumer.partitions_for_topic(kafka.topic))]
        return {tp.partition: end for tp, end in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def wait_for(condition: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if condition():
                return True
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a daemon or service still starting
        time.sleep(1)
    return False


def soak_processes(home: Path) -> list[int]:
    """Processes other than this one whose environment names the soak's home."""
    marker = f"DRIFTLOOP_HOME={home}".encode()
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if int(proc.name) != os.getpid() and marker in (proc / "environ").read_bytes().split(b"\0"):
                if running(int(proc.name)):
                    found.append(int(proc.name))
        except OSError:
            continue
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:300]
    except OSError:
        return "(gone)"


def store_check(home: Path, topic: str, ends: dict[int, int], acked: dict[tuple[int, int], str]) -> dict[str, int]:
    """Every (partition, offset) of the topic against where it landed. A send that timed out while the broker was
    paused can have landed all the same; its retry is then a second record with the same id, which ingest rightly
    rejects as a duplicate: counted as `resent_duplicates`, not as a good record rejected."""
    with duckdb.connect(str(home / "driftloop.duckdb"), read_only=True) as con:
        landed = con.execute(
            """SELECT partition, "offset", 'feedback', NULL FROM feedback WHERE topic = ?
               UNION ALL SELECT partition, "offset", 'rejected', reason FROM rejected WHERE topic = ?""",
            [topic, topic],
        ).fetchall()
        runs_left = con.execute("SELECT count(*) FROM training_runs WHERE status = 'running'").fetchone()
    places: dict[tuple[int, int], list[str]] = {}
    reasons: dict[tuple[int, int], str] = {}
    for partition, offset, table, reason in landed:
        places.setdefault((partition, offset), []).append(table)
        if reason is not None:
            reasons[(partition, offset)] = reason
    expected = {(p, o) for p, end in ends.items() for o in range(end)}
    good_rejected = [key for key, kind in acked.items() if kind == "good" and key in reasons]
    resent = [key for key in good_rejected if reasons[key].startswith("duplicate id good-")]
    return {
        "lost": len(expected - places.keys()),
        "duplicated": sum(len(tables) - 1 for tables in places.values() if len(tables) > 1),
        "bad_stored": sum(1 for key, kind in acked.items() if kind != "good" and "feedback" in places.get(key, [])),
        "good_rejected": len(good_rejected) - len(resent),
        "resent_duplicates": len(resent),
        "runs_left_running": int(runs_left[0]) if runs_left else 0,
    }


def soak(plan: Plan, work: Path, base_model: Path, seed: int) -> dict[str, Any]:
    started = time.monotonic()
    with LocalBroker(log_file=work / "broker.log") as broker:
        suffix = uuid.uuid4().hex[:8]
        kafka = KafkaSettings(bootstrap=broker.bootstrap, topic=f"soak-{suffix}", group_id=f"soak-{suffix}",
                              request_timeout_ms=10_000)  # fmt: skip
        ensure_topics(kafka, PARTITIONS)
        home = work / "home"
        env = loop.environment(home, base_model, kafka, KAFKA_REQUEST_TIMEOUT_MS="10000", REGISTRY_AUTO_APPROVE="true",
                               TRAINER_MAX_EPOCHS=str(plan.max_epochs), TRAINER_PATIENCE=str(plan.max_epochs),
                               **SOAK_INGEST)  # fmt: skip
        first = loop.write_jsonl(work / "bootstrap.jsonl", loop.records(0, BOOTSTRAP_ROWS, seed))
        loop.cli(env, "bootstrap", "--data", str(first))
        log("bootstrapped v1; starting the daemon, the service and the producer")
        processes = Processes(env, work, loop.free_port())
        processes.start_daemon()
        processes.start_service()
        producer = Producer(kafka, plan, seed)
        chaos = Chaos(processes, broker, plan, seed)
        chaos_started = time.monotonic()
        producer.start()
        try:
            chaos.run(chaos_started, chaos_started + plan.chaos_s + plan.settle_s / 3)
            time.sleep(max(0.0, chaos_started + plan.chaos_s - time.monotonic()))
            producer.stop.set()
            producer.join()
            result = settle(processes, kafka, plan, home, producer)
        finally:
            producer.stop.set()
            for process in (processes.daemon, processes.service):
                if process is not None and process.poll() is None:
                    os.killpg(process.pid, signal.SIGKILL)
            broker.resume()
    return {
        **result,
        "kills": sum(chaos.kills.values()),
        "kill_kinds": dict(chaos.kills),
        "kills_skipped": chaos.skipped,
        "broker_pauses": chaos.pauses,
        "bad_kinds": len({kind for kind in producer.acked.values() if kind != "good"}),
        "failed_sends": producer.failed_sends,
        "restarts": dict(processes.restarts),
        "seconds": round(time.monotonic() - started, 1),
    }


def settle(processes: Processes, kafka: KafkaSettings, plan: Plan, home: Path, producer: Producer) -> dict[str, Any]:
    """Let ingest catch up and the service converge, check the running system, then stop it and check the store."""
    env = processes.env
    deadline = time.monotonic() + plan.settle_s
    ends = topic_ends(kafka)
    log(f"producer stopped: {sum(ends.values())} records in the topic; waiting for ingest to catch up")

    def caught_up() -> bool:
        partitions = loop.live_status(env)["ingest"]["partitions"]  # type: ignore[index]
        return {p["partition"]: p["next_offset"] for p in partitions} == ends

    def serving_matches() -> bool:
        return bool(loop.live_status(env)["models"]["serving"]["matches"])  # type: ignore[index]

    caught = wait_for(caught_up, deadline - time.monotonic())
    matches = wait_for(serving_matches, max(deadline - time.monotonic(), 30))
    service_ready = service_client.ready(f"http://127.0.0.1:{processes.service_port}")
    status_answers = loop.cli(env, "status", check=False).returncode == 0
    runs = (loop.live_status(env) or {}).get("training", {}).get("runs_by_status", {})
    log(f"caught up: {caught}; serving matches the registry: {matches}; runs: {runs}")
    assert processes.daemon is not None
    assert processes.service is not None
    processes.daemon.terminate()
    daemon_exit = processes.daemon.wait(timeout=120)
    os.killpg(processes.service.pid, signal.SIGTERM)
    processes.service.wait(timeout=60)
    wait_for(lambda: not soak_processes(home), 15)
    orphans = soak_processes(home)
    for pid in orphans:
        log(f"left behind: {pid} {command_line(pid)}")
        os.kill(pid, signal.SIGKILL)
    checked = store_check(home, kafka.topic, ends, producer.acked)
    stuck_runs = checked.pop("runs_left_running")
    return {
        "records_sent": sum(ends.values()),
        "records_acked": len(producer.acked),
        **checked,
        "stuck_runs": stuck_runs,
        "runs_by_status": runs,
        "caught_up": caught,
        "served_matches_registry": matches,
        "service_ready": service_ready,
        "status_answers": status_answers,
        "daemon_exit_code": daemon_exit,
        "orphans": len(orphans),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="under 3 minutes, on a tiny model")
    parser.add_argument("--minutes", type=float, help="length of the chaos period (default 19 or, quick, 70 s)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-model", type=Path, help="model directory (default: MiniLM-L6; quick: a tiny BERT)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    if args.minutes:
        plan = dataclasses.replace(plan, chaos_s=args.minutes * 60)
    with tempfile.TemporaryDirectory(prefix="driftloop-soak-") as tmp:
        work = Path(tmp)
        base = args.base_model or (loop.tiny_base(work / "tiny") if args.quick else packaged_minilm())
        result = soak(plan, work, base, args.seed)
    healthy = (result["lost"] == result["duplicated"] == result["stuck_runs"] == result["orphans"] == 0
               and result["bad_stored"] == result["good_rejected"] == 0 and result["served_matches_registry"]
               and result["status_answers"] and result["daemon_exit_code"] == 0)  # fmt: skip
    log("healthy" if healthy else "NOT healthy")
    print(json.dumps(result))
    return 0 if healthy else 1


def packaged_minilm() -> Path:
    from trainer.settings import TrainerSettings

    return TrainerSettings().base_model_path()


if __name__ == "__main__":
    sys.exit(main())
