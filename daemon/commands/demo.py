"""`driftloop demo`: the whole loop on real health-news tweets (daemon/demo/ holds the scenario)."""

from __future__ import annotations

import click

from daemon.commands.state import CliState, pass_state
from daemon.demo.scenario import run_demo
from daemon.serving.tokens import predict_token


@click.command("demo")
@click.option("--quick", is_flag=True, help="Less of the data (a smoke run; the model learns little).")
@click.option("--full-labels", is_flag=True, help="Send every served tweet with its label, instead of what users "
              "send (30% of the wrong answers corrected, 5% of the right confirmed, a 3% audit sample).")  # fmt: skip
@pass_state
def demo(state: CliState, quick: bool, full_labels: bool) -> None:
    """Run the whole loop on real data: bootstrap, serve, stream, drift, train, gate, approve, swap, chart."""
    run_demo((state.settings.home / "demo").resolve(), quick, predict_token(state.settings.registry), full_labels)


COMMANDS = [demo]
