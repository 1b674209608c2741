"""`driftloop demo`: the whole loop on real data, health-news tweets or WordNet definitions (daemon/demo/ holds the
scenario)."""

from __future__ import annotations

import click

from daemon.commands.state import CliState, pass_state
from daemon.demo.scenario import run_demo
from daemon.demo.tasks import TASKS
from daemon.serving.tokens import predict_token


@click.command("demo")
@click.option("--task", "task_kind", type=click.Choice(sorted(TASKS)), default="classification", show_default=True,
              help="classification: health-news tweets by outlet; generation: SmolLM2 defines words.")  # fmt: skip
@click.option("--quick", is_flag=True, help="Less of the data (a smoke run; the model learns little).")
@click.option("--full-labels", is_flag=True, help="Send every served tweet with its label, instead of what users "
              "send (30% of the wrong answers corrected, 5% of the right confirmed, a 3% audit sample).")  # fmt: skip
@pass_state
def demo(state: CliState, task_kind: str, quick: bool, full_labels: bool) -> None:
    """Run the whole loop on real data: bootstrap, serve, stream, drift, train, gate, approve, swap, chart."""
    home = (state.settings.home / ("demo" if task_kind == "classification" else f"demo-{task_kind}")).resolve()
    run_demo(home, TASKS[task_kind], quick, predict_token(state.settings.registry), full_labels)


COMMANDS = [demo]
