"""`driftloop bootstrap`: train and publish the first production model from an initial labelled set.

The set goes into the store as episode 0 through the same checks as Kafka records (its rows keep the file
name and line number as their coordinates), so its holdout is measured by every later gate.
"""

from __future__ import annotations

import getpass
import time
from pathlib import Path
from typing import Any

import click

from daemon.commands.state import CliState, pass_state
from daemon.errors import DaemonError
from daemon.loop import runs
from daemon.loop.access import StoreAccess
from daemon.loop.admin import daemon_running
from daemon.loop.registry_actions import rebaseline_drift
from daemon.loop.store import open_store
from daemon.loop.submission import submit_run
from daemon.loop.training import follow, launch
from daemon.settings import Settings
from ingest.history import rows_from_topic
from ingest.records import incoming_table
from ingest.store import FeedbackStore


@click.command("bootstrap")
@click.option("--data", "data_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), required=True,
              help="JSON lines in the feedback schema (id, text, label, ...).")  # fmt: skip
@click.option("--actor", default=getpass.getuser, show_default="the OS user", help="Who approves version 1.")
@pass_state
def bootstrap(state: CliState, data_file: Path, actor: str) -> None:
    """Train the first production model on a labelled file, register it and approve it."""
    settings = state.settings
    if daemon_running(settings.home):
        raise DaemonError("the daemon is running; stop it (`kill -TERM`), bootstrap, then start `driftloop run`")
    with open_store(settings) as store:
        model = bootstrap_store(store, settings, data_file, actor)
    click.echo(f"bootstrap: {model['version']} is in production ({model['tag']})")


def bootstrap_store(store: FeedbackStore, settings: Settings, data_file: Path, actor: str) -> dict[str, Any]:
    con = store.con
    registry = StoreAccess(con, settings).registry()
    current = registry.production()
    if current is not None:
        raise DaemonError(
            f"{current.version} is already in production; bootstrap trains only the first model "
            "(new data reaches production through drift and `driftloop approve`)"
        )
    _load(store, data_file)
    launched = launch(con, settings, runs.bootstrap_run(con), None)
    if launched is None:
        failed = runs.list_runs(con, limit=1)[0]
        raise DaemonError(f"bootstrap run {failed.id} could not start: {failed.reason}")
    record, process = launched
    click.echo(f"training run {record.id}: {record.data} (progress in {Path(record.out_dir).parent})")
    status = follow(con.cursor, record, process, _print_progress)
    if status != "succeeded":
        raise DaemonError(f"bootstrap run {record.id} {status}: {runs.get_run(con, record.id).reason}")
    model = submit_run(con, registry, runs.get_run(con, record.id), settings.trainer.latency_samples, settings.drift)
    if model is None:
        raise DaemonError(f"bootstrap run {record.id}: {runs.get_run(con, record.id).reason}")
    for check in model.checks:
        click.echo(f"  [{'ok' if check['passed'] else 'no'}] {check['reason']}")
    if not model.gate_passed:
        raise DaemonError(
            f"{model.version} failed the gate (reasons above); look at `driftloop show {model.version}` and approve "
            f"it with --force --reason, or bootstrap again with more data"
        )
    if model.stage != "production":  # not promoted by registry.auto_approve already
        registry.approve(model.version, actor, f"bootstrap from {data_file.name}")
        rebaseline_drift(con, settings.drift)  # the first model: drift is watched from after the bootstrap set
    return {"version": model.version, "tag": registry.production_tag()}


def _load(store: FeedbackStore, data_file: Path) -> None:
    """Store the file's lines (once: a second bootstrap after a failed run finds them stored)."""
    topic = f"file:{data_file.name}"
    if rows_from_topic(store.con, topic):
        click.echo(f"{data_file} is already stored")
        return
    numbered = [(number, line) for number, line in enumerate(data_file.read_bytes().splitlines()) if line.strip()]
    now_ms = int(time.time() * 1000)
    table = incoming_table([line for _, line in numbered], topic, offsets=[number for number, _ in numbered],
                           timestamps_ms=[now_ms] * len(numbered))  # fmt: skip
    result = store.write_batch(table, {})
    click.echo(
        f"stored {result.stored} rows of {data_file} ({result.rejected} rejected: `driftloop feedback rejected`)"
    )
    if not result.stored:
        raise DaemonError(f"{data_file} holds no valid record; see `driftloop feedback rejected` for why")


def _print_progress(event: dict[str, Any]) -> None:
    kind = event.get("event")
    if kind == "phase":
        click.echo(f"  {event['phase']}")
    elif kind == "validation":
        click.echo(f"  epoch {event['epoch']}: validation {event['metric']} {event[event['metric']]:.4f}")
    elif kind == "progress":
        click.echo(f"  epoch {event['epoch']} step {event['step']}: loss {event['loss']:.4f}, "
                   f"{event['samples_per_s']:.1f} samples/s")  # fmt: skip


COMMANDS = [bootstrap]
