"""`driftloop demo`: the loop as it exists so far, run for real, one documented command at a time."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time

import click

from daemon.cli import CliState, pass_state
from daemon.demo_data import write_demo_feedback
from ingest.broker import LocalBroker

DEMO_RECORDS = 2_000


@click.command("demo")
@click.option("--records", default=DEMO_RECORDS, show_default=True, help="How many real tweets to send.")
@pass_state
def demo(state: CliState, records: int) -> None:
    """Start a local broker, send real feedback with some bad records, ingest it, show stored and rejected."""
    home = state.settings.home / "demo"
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir(parents=True)
    external = os.environ.get("DRIFTLOOP_KAFKA_BOOTSTRAP")
    broker = None if external else LocalBroker(log_file=home / "broker.log").start()
    env = {
        **os.environ,
        "DRIFTLOOP_HOME": str(home),
        "DRIFTLOOP_KAFKA_BOOTSTRAP": external or (broker.bootstrap if broker else ""),
        "DRIFTLOOP_KAFKA_TOPIC": f"driftloop-demo-{int(time.time())}",
    }
    try:
        feedback_file = home / "feedback.jsonl"
        good, bad = write_demo_feedback(feedback_file, records)
        click.secho(f"wrote {good} health-news tweets and {bad} bad records to {feedback_file}", bold=True)
        click.echo(f"kafka: {env['DRIFTLOOP_KAFKA_BOOTSTRAP']}  topic: {env['DRIFTLOOP_KAFKA_TOPIC']}  home: {home}")
        for step in (
            ["topic", "create", "--partitions", "2"],
            ["feedback", "load", str(feedback_file), "--no-check"],
            ["ingest", "--once"],
            ["feedback", "stats"],
            ["feedback", "rejected", "--limit", str(bad)],
        ):
            _run_step(step, env)
    finally:
        if broker is not None:
            broker.stop()


def _run_step(arguments: list[str], env: dict[str, str]) -> None:
    click.secho(f"\n$ driftloop {shlex.join(arguments)}", fg="cyan", bold=True)
    completed = subprocess.run([sys.executable, "-m", "daemon", *arguments], env=env, check=False)
    if completed.returncode != 0:
        raise click.ClickException(f"`driftloop {shlex.join(arguments)}` exited with {completed.returncode}")


COMMANDS = [demo]
