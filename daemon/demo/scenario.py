"""`driftloop demo`: the whole loop on real health-news tweets, each step the documented command that does it.

Version 1 learns early-2013 tweets; the service then serves late-2014 tweets (new topics, new outlets). People
react as they do: users correct 30% of the wrong answers and confirm 5% of the right ones, and a reviewer labels
the 3% audit sample. The daemon sees the drift in the served traffic, trains a candidate from version 1 on the new
feedback plus a replay sample, the gate checks it on the audit labels and the earlier holdout, an operator
approves it, the service swaps to it. `--full-labels` sends every tweet with its label instead.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from daemon.demo.data import DemoSizes, write_demo_files
from daemon.demo.users import Served, reviewed, user_feedback
from daemon.errors import DaemonError
from daemon.serving import client as service_client
from ingest.broker import LocalBroker, free_port

# The demo's own settings (written to <home>/driftloop.toml): a smaller drift warm-up than the default, sized
# for a few thousand tweets; one forward pass per optimizer step (more updates per epoch)
# and four epochs, so each run takes minutes on two cores; no per-class recall floor, because several of the
# 16 outlets cannot be told apart from one tweet (every model of this size misses some of them entirely).
DEMO_TOML = """\
[registry]
task = "health-news"
gate_recall_floor = 0.0

[drift]
warmup_rows = 500
cooldown_rows = 5000
served_label_wait_s = 20

[daemon]
drift_check_interval_s = 5
training_check_interval_s = 5
min_new_rows = 1500
metrics_port = 0

[trainer]
max_epochs = 4
grad_accumulation = 1
"""
WAIT_FOR_CANDIDATE_S = 900
# Served traffic is many times the feedback it brings in: as users, the demo serves more late-2014 tweets. The
# early-2013 stream stays short: over 2,000 of its tweets the mix of outlets moves enough for `label_mix` to fire
# before the shift (measured 2026-11-30: at served tweet 1,175).
AS_USERS = DemoSizes(bootstrap=3_000, reference=800, shifted=6_000, after=600, evaluation=500)
FULL_LABELS = DemoSizes()
QUICK_AS_USERS = DemoSizes(300, 600, 2_000, 100, 100)
QUICK_FULL_LABELS = DemoSizes(300, 600, 700, 100, 100)
USERS_CHUNK = 1_000  # tweets served between two rounds of feedback and review
SERVE_BATCH = 64


def run_demo(home: Path, quick: bool, predict_token: str | None = None, full_labels: bool = False) -> None:
    """The whole loop in `home` (emptied first): bootstrap, serve, stream, drift, train, gate, approve, swap, chart.

    `predict_token` is sent when the demo asks the service itself (its commands read their own settings)."""
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "driftloop.toml").write_text(DEMO_TOML)
    sizes = (QUICK_FULL_LABELS if quick else FULL_LABELS) if full_labels else (QUICK_AS_USERS if quick else AS_USERS)
    files = write_demo_files(home, sizes)
    external = os.environ.get("DRIFTLOOP_KAFKA_BOOTSTRAP")
    broker = None if external else LocalBroker(log_file=home / "broker.log").start()
    port = free_port()
    started = int(time.time())
    env = {
        **os.environ,
        "DRIFTLOOP_HOME": str(home),
        "DRIFTLOOP_KAFKA_BOOTSTRAP": external or (broker.bootstrap if broker else ""),
        "DRIFTLOOP_KAFKA_TOPIC": f"driftloop-demo-{started}",
        "DRIFTLOOP_KAFKA_PREDICTIONS_TOPIC": f"driftloop-demo-{started}-predictions",
        "DRIFTLOOP_REGISTRY_PORT": str(port),
    }
    if quick:  # too little data to learn 16 outlets: the gate's margin is off
        rows = "600" if full_labels else "400"
        env |= {"DRIFTLOOP_DAEMON_MIN_NEW_ROWS": rows, "DRIFTLOOP_REGISTRY_GATE_MARGIN": "0"}
    service_url = f"http://127.0.0.1:{port}"
    background: list[subprocess.Popen[bytes]] = []
    click.secho(f"demo home {home} (settings: {home / 'driftloop.toml'}), kafka {env['DRIFTLOOP_KAFKA_BOOTSTRAP']}",
                bold=True)  # fmt: skip
    try:
        step(env, home, "topic", "create", "--partitions", "1")  # one partition: the stream keeps its order
        step(env, home, "bootstrap", "--data", files.bootstrap.name)
        background.append(start_background(env, home, "serve"))
        wait(lambda: service_client.ready(service_url), 180, "the service to load v1")
        before = {name: _accuracy(step(env, home, "feedback", "annotate", path.name, "--service", service_url))
                  for name, path in (("old", files.eval_old), ("new", files.eval_new))}  # fmt: skip
        daemon = start_background(env, home, "run")
        background.append(daemon)
        people = People(env, home, service_url, predict_token) if not full_labels else None

        def serve(stream: Path) -> None:
            """The tweets of `stream` served, and the feedback people send for them."""
            if people is None:
                stream_served(env, home, stream, service_url)
            else:
                people.react(stream)

        for stream in (files.reference, files.shifted):
            serve(stream)
        step(env, home, "feedback", "load", files.bad.name, "--no-check")
        version = _wait_for_candidate(env, home)
        step(env, home, "show", version)
        step(env, home, "approve", version, "--reason", "demo: recovers the late-2014 tweets, keeps early 2013")
        swapped = functools.partial(_serving, service_url, files.eval_new, version, predict_token)
        wait(swapped, 30, f"the service to swap to {version}")
        after = {name: _accuracy(step(env, home, "feedback", "annotate", path.name, "--service", service_url))
                 for name, path in (("old", files.eval_old), ("new", files.eval_new))}  # fmt: skip
        serve(files.after)
        streamed = sizes.bootstrap + (sizes.reference + sizes.shifted + sizes.after if people is None else people.sent)
        wait(lambda: _status(env, home)["ingest"]["rows"] >= streamed, 120, f"the daemon to store {streamed} rows")
        step(env, home, "lineage", version)
        click.secho(f"\n$ kill -TERM {daemon.pid}   # the daemon stops in order", fg="cyan", bold=True)
        daemon.terminate()
        click.echo(f"daemon exited with {daemon.wait(timeout=120)}")
        step(env, home, "status")
        step(env, home, "chart", "--out", "chart.png")
        if people is not None:
            click.echo(f"\nserved {people.served} tweets; users sent {people.corrections} corrections and "
                       f"{people.confirmations} confirmations, the reviewer {people.audits} audit labels")  # fmt: skip
        _summary(before, after, home / "chart.png")
    finally:
        for process in reversed(background):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
        if broker is not None:
            broker.stop()


def step(env: dict[str, str], home: Path, *arguments: str) -> str:
    """Run one documented command in the demo home, echoing it and its output; a failure stops the demo."""
    click.secho(f"\n$ driftloop {shlex.join(arguments)}", fg="cyan", bold=True)
    with subprocess.Popen([sys.executable, "-m", "daemon", *arguments], env=env, cwd=home, stdout=subprocess.PIPE,
                          text=True) as process:  # fmt: skip
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            click.echo(line, nl=False)
            lines.append(line)
    if process.returncode != 0:
        raise click.ClickException(f"`driftloop {shlex.join(arguments)}` exited with {process.returncode}")
    return "".join(lines)


def stream_served(env: dict[str, str], home: Path, stream: Path, service_url: str) -> None:
    """The service predicts every tweet; the tweets go to Kafka as corrections of those predictions."""
    annotated = stream.with_name(f"{stream.stem}-served.jsonl")
    step(env, home, "feedback", "annotate", stream.name, "--service", service_url, "--out", annotated.name)
    step(env, home, "feedback", "load", annotated.name)


class People:
    """Users of the served model and its reviewer: the service predicts every tweet (served traffic, logged), users
    correct 30% of the wrong answers and confirm 5% of the right ones, a reviewer labels the audit sample."""

    def __init__(self, env: dict[str, str], home: Path, service_url: str, token: str | None) -> None:
        self.env, self.home, self.service_url, self.token = env, home, service_url, token
        self.rng = random.Random(0)
        self.truth: dict[str, str] = {}  # prediction id -> the dataset's label
        self.served = self.corrections = self.confirmations = self.audits = self.sent = 0

    def react(self, stream: Path) -> None:
        """Serve the tweets of `stream` in chunks; after each, the users' feedback and a round of review."""
        tweets = [json.loads(line) for line in stream.read_text(encoding="utf-8").splitlines()]
        for start in range(0, len(tweets), USERS_CHUNK):
            served = self._serve(tweets[start : start + USERS_CHUNK])
            reactions = user_feedback(served, self.rng)
            self.corrections += sum(record["kind"] == "correction" for record in reactions)
            self.confirmations += sum(record["kind"] == "confirmation" for record in reactions)
            self._send(f"{stream.stem}-{start}-users.jsonl", reactions)
            self._review(f"{stream.stem}-{start}-audit.jsonl")

    def _serve(self, tweets: list[dict[str, Any]]) -> list[Served]:
        served = []
        for start in range(0, len(tweets), SERVE_BATCH):
            batch = tweets[start : start + SERVE_BATCH]
            answer = service_client.request_predictions(self.service_url, [t["text"] for t in batch], self.token)
            served += [Served(p["prediction_id"], p["label"], t["label"])
                       for t, p in zip(batch, answer["predictions"], strict=True)]  # fmt: skip
        self.truth.update({prediction.prediction_id: prediction.truth for prediction in served})
        self.served += len(served)
        return served

    def _review(self, name: str) -> None:
        """Once the daemon holds what was served, export the audit sample, label it, send the labels."""
        wait(lambda: _status(self.env, self.home)["ingest"]["prediction_log"]["predictions"] >= self.served, 120,
             "the daemon to store the served predictions")  # fmt: skip
        step(self.env, self.home, "audit", "export", "--out", name)
        to_label = [json.loads(line) for line in (self.home / name).read_text(encoding="utf-8").splitlines()]
        self.audits += len(to_label)
        self._send(name, reviewed(to_label, self.truth))

    def _send(self, name: str, records: list[dict[str, Any]]) -> None:
        (self.home / name).write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
        step(self.env, self.home, "feedback", "load", name)
        self.sent += len(records)


def start_background(env: dict[str, str], home: Path, command: str) -> subprocess.Popen[bytes]:
    log = home / f"{command}.log"
    click.secho(f"\n$ driftloop {command} > {log.name} 2>&1 &", fg="cyan", bold=True)
    with open(log, "ab") as output:
        return subprocess.Popen([sys.executable, "-m", "daemon", command], env=env, cwd=home, stdout=output,
                                stderr=output)  # fmt: skip


def wait(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise DaemonError(f"gave up waiting {timeout_s:.0f} s for {what}; see the logs in the demo home")
        time.sleep(1.0)


def _wait_for_candidate(env: dict[str, str], home: Path) -> str:
    """Follow `driftloop status --json` until a candidate waits for approval (or failed the gate)."""
    click.secho("\n$ driftloop status --json   # every 15 s until a candidate waits for approval", fg="cyan", bold=True)
    deadline, shown = time.monotonic() + WAIT_FOR_CANDIDATE_S, ""
    while time.monotonic() < deadline:
        current = _status(env, home)
        line = _progress_line(current)
        if line != shown:
            click.echo(f"  {time.strftime('%H:%M:%S')} {line}")
            shown = line
        models = current["models"]
        if models["pending"]:
            return str(models["pending"][0])
        last = current["training"]["last_run"]
        if models["gate_decisions"]["failed"] or (last and last["status"] == "failed"):
            step(env, home, "models")
            raise DaemonError("the candidate did not pass (see above); the demo stops here")
        time.sleep(15)
    raise DaemonError(f"no candidate within {WAIT_FOR_CANDIDATE_S} s; see run.log in the demo home")


def _status(env: dict[str, str], home: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "daemon", "status", "--json"], env=env, cwd=home, check=True,
                          capture_output=True, text=True)  # fmt: skip
    current: dict[str, Any] = json.loads(done.stdout)
    return current


def _progress_line(current: dict[str, Any]) -> str:
    ingest, drift, training = current["ingest"], current["drift"], current["training"]
    active = training.get("active")
    if active:
        event = active["progress"]
        doing = f"training run {active['run']}: {event.get('phase') or event.get('event', 'starting')}"
        if "epoch" in event:
            doing += f" epoch {event['epoch']}"
        if "macro_f1" in event:
            doing += f", validation macro-F1 {event['macro_f1']:.3f}"
    else:
        doing = "no training"
    rows = f"{ingest['rows']} rows, {ingest['rejected']} rejected"
    return f"{rows}, drift {drift['phase']} ({drift['events']} events), {doing}"


def _serving(url: str, sample: Path, version: str, token: str | None) -> bool:
    text = json.loads(sample.read_text().splitlines()[0])["text"]
    return str(service_client.request_predictions(url, [text], token)["source"]).endswith(f":{version}")


def _accuracy(output: str) -> float:
    return float(output.rsplit("accuracy of ", 1)[1].split(": ", 1)[1].split()[0])


def _summary(before: dict[str, float], after: dict[str, float], chart: Path) -> None:
    gained = 100 * (after["new"] - before["new"])
    lost = 100 * (before["old"] - after["old"])
    click.secho("\nserved model accuracy      before    after", bold=True)
    click.echo(f"  late 2014 (new period)   {before['new']:.4f}    {after['new']:.4f}   ({gained:+.1f} points)")
    click.echo(f"  early 2013 (old period)  {before['old']:.4f}    {after['old']:.4f}   ({-lost:+.1f} points)")
    verdict = "recovered" if gained > 0 and lost <= 1.0 else "NOT recovered within 1 point of the old period"
    click.secho(f"the new period {verdict}; chart: {chart}", bold=True)
