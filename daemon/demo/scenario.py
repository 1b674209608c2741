"""`driftloop demo`: the whole loop on real data, each step the documented command that does it.

Version 1 learns early-2013 health-news tweets (with `--task generation`: to define animals); the service then
serves late-2014 tweets (new topics, new outlets; verbs of motion). People react as they do: users correct 30% of
the wrong answers and confirm 5% of the right ones, and a reviewer labels the audit sample. The daemon sees the
drift in the served traffic, trains a candidate from version 1 on the new feedback plus a replay sample, the gate
checks it on the audit labels and the earlier holdout, an operator approves it, the service swaps to it.
`--full-labels` sends every tweet with its label instead.
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

from daemon.demo.data import DemoFiles, DemoSizes
from daemon.demo.tasks import Ask, DemoTask
from daemon.demo.users import Served, reviewed, user_feedback
from daemon.errors import DaemonError
from daemon.serving import client as service_client
from ingest.broker import LocalBroker, free_port

WAIT_FOR_CANDIDATE_S = 900


def run_demo(
    home: Path, task: DemoTask, quick: bool, predict_token: str | None = None, full_labels: bool = False
) -> None:
    """The whole loop of `task` in `home` (emptied first): bootstrap, serve, stream, drift, train, gate, approve,
    swap, chart.

    `predict_token` is sent when the demo asks the service itself (its commands read their own settings)."""
    sizes, files, quick_env = _prepare(home, task, quick, full_labels)
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
        **quick_env,
    }
    service_url = f"http://127.0.0.1:{port}"
    background: list[subprocess.Popen[bytes]] = []
    click.secho(f"demo home {home} (settings: {home / 'driftloop.toml'}), kafka {env['DRIFTLOOP_KAFKA_BOOTSTRAP']}",
                bold=True)  # fmt: skip
    try:
        step(env, home, "topic", "create", "--partitions", "1")  # one partition: the stream keeps its order
        step(env, home, "bootstrap", "--data", files.bootstrap.name)
        background.append(start_background(env, home, "serve"))
        wait(lambda: service_client.ready(service_url), 180, "the service to load v1")
        before = _measure(env, home, files, service_url, "v1")
        daemon = start_background(env, home, "run")
        background.append(daemon)
        people = None if full_labels else People(env, home, service_url, predict_token, task)

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
        step(env, home, "approve", version, "--reason", f"demo: learns {task.periods[0]}, keeps {task.periods[1]}")
        swapped = functools.partial(_serving, service_url, files.eval_new, version, predict_token, task.ask)
        wait(swapped, 30, f"the service to swap to {version}")
        after = _measure(env, home, files, service_url, version)
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
            click.echo(f"\nserved {people.served} {task.items}; users sent {people.corrections} corrections and "
                       f"{people.confirmations} confirmations, the reviewer {people.audits} audit labels")  # fmt: skip
        if task.shows_answers:
            _examples(home, version)
        _summary(task, before, after, home / "chart.png")
    finally:
        for process in reversed(background):
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=60)
        if broker is not None:
            broker.stop()


def _prepare(home: Path, task: DemoTask, quick: bool, full_labels: bool) -> tuple[DemoSizes, DemoFiles, dict[str, str]]:
    """`home` emptied, with the task's settings and data files in it; the sizes and the settings of a --quick run."""
    sizing = task.full_labels if full_labels else task.as_users
    if sizing is None:
        raise DaemonError("--full-labels is a classification demo; leave it out with --task generation")
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    (home / "driftloop.toml").write_text(task.toml)
    sizes = sizing.quick_sizes if quick else sizing.sizes
    return sizes, task.write_files(home, sizes), sizing.quick_env if quick else {}


def _measure(env: dict[str, str], home: Path, files: DemoFiles, service_url: str, version: str) -> dict[str, float]:
    """The served model's score on the held-out sets of both periods; its answers go to `eval-*-VERSION.jsonl`."""
    return {name: _score(step(env, home, "feedback", "annotate", path.name, "--service", service_url, "--out",
                              f"{path.stem}-{version}.jsonl"))
            for name, path in (("old", files.eval_old), ("new", files.eval_new))}  # fmt: skip


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

    def __init__(self, env: dict[str, str], home: Path, service_url: str, token: str | None, task: DemoTask) -> None:
        self.env, self.home, self.service_url, self.token, self.task = env, home, service_url, token, task
        self.rng = random.Random(0)
        self.truth: dict[str, str] = {}  # prediction id -> the dataset's label
        self.served = self.corrections = self.confirmations = self.audits = self.sent = 0

    def react(self, stream: Path) -> None:
        """Serve the tweets of `stream` in chunks; after each, the users' feedback and a round of review."""
        tweets = [json.loads(line) for line in stream.read_text(encoding="utf-8").splitlines()]
        chunk = self.task.users_chunk
        for start in range(0, len(tweets), chunk):
            served = self._serve(tweets[start : start + chunk])
            reactions = user_feedback(served, self.rng)
            self.corrections += sum(record["kind"] == "correction" for record in reactions)
            self.confirmations += sum(record["kind"] == "confirmation" for record in reactions)
            self._send(f"{stream.stem}-{start}-users.jsonl", reactions)
            self._review(f"{stream.stem}-{start}-audit.jsonl")

    def _serve(self, tweets: list[dict[str, Any]]) -> list[Served]:
        served = []
        for start in range(0, len(tweets), self.task.serve_batch):
            batch = tweets[start : start + self.task.serve_batch]
            _, said = self.task.ask(self.service_url, [t["text"] for t in batch], self.token, True)
            served += [Served(prediction_id, answer, t["label"])
                       for t, (prediction_id, answer) in zip(batch, said, strict=True)]  # fmt: skip
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
        if "metric" in event:
            doing += f", validation {event['metric']} {event[event['metric']]:.3f}"
    else:
        doing = "no training"
    rows = f"{ingest['rows']} rows, {ingest['rejected']} rejected"
    return f"{rows}, drift {drift['phase']} ({drift['events']} events), {doing}"


def _serving(url: str, sample: Path, version: str, token: str | None, ask: Ask) -> bool:
    text = json.loads(sample.read_text().splitlines()[0])["text"]
    source, _ = ask(url, [text], token, False)  # a probe, not served traffic: a reviewer would not see it
    return source.endswith(f":{version}")


def _score(output: str) -> float:
    """The score `driftloop feedback annotate` printed: "accuracy of SOURCE on FILE: 0.4780 (...)"."""
    return float(output.rsplit(" on ", 1)[1].split(": ", 1)[1].split()[0].rstrip(","))


def _summary(task: DemoTask, before: dict[str, float], after: dict[str, float], chart: Path) -> None:
    click.secho(f"\nserved model {task.score:<15} before    after", bold=True)
    for key, name in (("new", task.periods[0]), ("old", task.periods[1])):
        change = task.points * (after[key] - before[key])
        click.echo(f"  {name:<26} {before[key]:7.4f}  {after[key]:7.4f}   ({change:+.1f} points)")
    gained, lost = (task.points * (after["new"] - before["new"]), task.points * (before["old"] - after["old"]))
    verdict = "recovered" if gained > 0 and lost <= 1.0 else "NOT recovered within 1 point of the old period"
    click.secho(f"the new period {verdict}; chart: {chart}", bold=True)


def _examples(home: Path, version: str, count: int = 3) -> None:
    """The first held-out prompts of the new period: the dictionary's answer, version 1's and `version`'s."""
    first, last = ([json.loads(line) for line in (home / f"eval-new-{name}.jsonl").read_text().splitlines()]
                   for name in ("v1", version))  # fmt: skip
    for old, new in list(zip(first, last, strict=True))[:count]:
        click.echo(
            f"\n  {old['text']}\n    dictionary: {old['label']}\n    v1: {old['prediction']}\n"
            f"    {version}: {new['prediction']}"
        )
