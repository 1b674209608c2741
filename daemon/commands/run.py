"""`driftloop run` and `driftloop status`."""

from __future__ import annotations

import json
from typing import Any

import click

from daemon.commands.state import CliState, pass_state
from daemon.loop.admin import daemon_lock
from daemon.loop.operations import call
from daemon.loop.signals import stop_on_signals


@click.command("run")
@pass_state
def run(state: CliState) -> None:
    """Run the daemon: ingest, drift checks and the admin API, until SIGTERM/SIGINT."""
    from daemon.loop.runtime import Daemon  # APScheduler and prometheus_client: only when the daemon runs

    with stop_on_signals() as stop, daemon_lock(state.settings.home):
        Daemon(state.settings, stop).run()


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """Rows, rejections, partition offsets and drift signals; from the running daemon when there is one."""
    current = call(state.settings, "status")
    if as_json:
        click.echo(json.dumps(current, indent=2, default=str))
        return
    _print_status(current, state.settings.trainer.task_kind == "generation")


def _print_status(current: dict[str, Any], generation: bool) -> None:
    ingest, drift, daemon = current["ingest"], current["drift"], current.get("daemon")
    click.echo(f"daemon: running, pid {daemon['pid']}, up {daemon['uptime_s']} s" if daemon else "daemon: not running")
    if daemon and daemon.get("ingest_halted"):
        click.echo(f"ingest: HALTED ({daemon['ingest_halted']}); fix the cause, then restart the daemon")
    click.echo(
        f"ingest: {ingest['rows']} rows ({ingest['holdout_rows']} holdout, {ingest['labels']} labels), "
        f"{ingest['rejected']} rejected, topic {ingest['topic']}"
    )
    lag = daemon["lag"] if daemon else {}
    _print_partitions(ingest["partitions"], lag.get(ingest["topic"], {}))
    log = ingest["prediction_log"]
    click.echo(
        f"prediction log: {log['predictions']} predictions ({log['with_text']} with their text), "
        f"{log['waiting_feedback']} feedback waiting for its prediction, topic {log['topic']}"
    )
    _print_partitions(log["partitions"], lag.get(log["topic"], {}))
    click.echo(f"drift: {drift['phase']} on the {drift['stream']} stream, {drift['rows_seen']} rows seen, "
               f"{drift['events']} events")  # fmt: skip
    if drift["warning"]:
        click.echo(f"  WARNING: {drift['warning']}")
    for reading in drift["readings"]:
        value = "n/a" if reading["value"] is None else f"{reading['value']:.4f}"
        click.echo(f"  {reading['name']:<11} {value:>8}  threshold {reading['threshold']}")
    if drift["last_event"]:
        click.echo(f"  last event: {drift['last_event']}")
    _print_models(current["models"], current["training"], generation)


def _print_partitions(partitions: list[dict[str, Any]], lag: dict[str, int]) -> None:
    for partition in partitions:
        behind = lag.get(str(partition["partition"]))
        shown = "" if behind is None else f", lag {behind}"
        click.echo(f"  partition {partition['partition']}: next offset {partition['next_offset']}{shown}")


def _print_models(models: dict[str, Any], training: dict[str, Any], generation: bool) -> None:
    pending = ", ".join(models["pending"]) or "none"
    click.echo(f"models: production {models['production'] or 'none (run `driftloop bootstrap`)'}, "
               f"waiting for approval: {pending}")  # fmt: skip
    serving = models.get("serving")
    if serving is not None:
        click.echo(f"service: serving {serving['version'] or 'nothing'} (registry: {serving['registry_version']})"
                   + ("" if serving["matches"] else "  MISMATCH"))  # fmt: skip
        if serving["failed_version"]:
            click.echo(f"  could not load {serving['failed_version']}: {serving['error']}")
    accuracy = models["accuracy"]
    if accuracy["model_version"] is not None and generation:  # an answer has no confidence, and is rarely exact
        kept = _share(accuracy["audited"])
        click.echo(f"answers of {accuracy['model_version']} as served: {accuracy['predictions']} logged, {kept} of "
                   f"{accuracy['audit_rows']} reviewed left word for word")  # fmt: skip
    elif accuracy["model_version"] is not None:
        click.echo(f"accuracy of {accuracy['model_version']} as served: {_share(accuracy['estimated'])} estimated from "
                   f"its confidence over {accuracy['predictions']} predictions, {_share(accuracy['audited'])} on "
                   f"{accuracy['audit_rows']} audit labels")  # fmt: skip
    active, last = training.get("active"), training["last_run"]
    if active:
        progress = active["progress"]
        shown = ", ".join(f"{key} {value}" for key, value in progress.items() if key != "event") or "starting"
        click.echo(f"training: run {active['run']} running (pid {active['pid']}): {shown}")
    elif last:
        queued = last["status"] == "queued"
        by = f" by {last['actor']}" if last.get("actor") else ""
        said = last["why"] if queued else last["reason"]
        click.echo(f"training: {'run' if queued else 'last run'} {last['id']} ({last['trigger']}{by}, episode "
                   f"{last['episode']}) {last['status']}{f': {said}' if said else ''}")  # fmt: skip
    else:
        click.echo("training: no run yet")


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


COMMANDS = [run, status]
