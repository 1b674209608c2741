"""`driftloop broker` and `driftloop topic create`: a local broker for trying driftloop, and the topic."""

from __future__ import annotations

import click

from daemon.commands.state import CliState, pass_state
from daemon.loop.signals import stop_on_signals
from ingest.broker import LocalBroker
from ingest.kafka_clients import connect_once, ensure_topics


@click.command("broker")
@click.option("--port", type=int, help="Loopback port to listen on (default: a free one).")
def broker(port: int | None) -> None:
    """Run a local in-memory Kafka-protocol broker (Tansu) in the foreground until Ctrl-C."""
    with stop_on_signals() as stop, LocalBroker(port) as local:
        click.echo(f"broker listening; export DRIFTLOOP_KAFKA_BOOTSTRAP={local.bootstrap}", err=True)
        while not stop.wait(1.0):
            if local.process is not None and local.process.poll() is not None:
                raise click.ClickException(f"the broker exited with code {local.process.returncode}")


@click.group("topic")
def topic_group() -> None:
    """Manage the feedback topic and the prediction log's."""


@topic_group.command("create")
@click.option("--partitions", default=4, show_default=True, help="Number of partitions of each.")
@pass_state
def create(state: CliState, partitions: int) -> None:
    """Create the feedback topic (kafka.topic) and the prediction log's (kafka.predictions_topic) if missing."""
    kafka = state.settings.kafka
    created = connect_once(lambda: ensure_topics(kafka, partitions), kafka)
    for topic, new in created.items():
        click.echo(f"topic {topic} {'created' if new else 'already exists'}")


COMMANDS = [broker, topic_group]
