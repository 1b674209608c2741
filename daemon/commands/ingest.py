"""`driftloop ingest`: Kafka → DuckDB until stopped, or `--once` until the topic is drained."""

from __future__ import annotations

import click

from daemon.commands.state import CliState, pass_state
from daemon.loop.signals import stop_on_signals
from ingest.consumer import FeedbackIngestor
from ingest.store import FeedbackStore


@click.command("ingest")
@click.option("--once", is_flag=True, help="Drain what is available, then exit.")
@pass_state
def ingest(state: CliState, once: bool) -> None:
    """Consume the feedback topic into the store; SIGTERM/SIGINT finish the batch, commit and exit 0."""
    settings = state.settings
    store = FeedbackStore(settings.store_path, settings.ingest, settings.kafka.predictions_topic)
    with stop_on_signals() as stop, store:
        progress = FeedbackIngestor(settings.kafka, settings.ingest, store, stop).run(once=once)
    click.echo(f"stored {progress.stored}, rejected {progress.rejected} in {progress.batches} batches")


COMMANDS = [ingest]
