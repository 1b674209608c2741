"""`driftloop train|cancel`: an operator starts a training run now, or stops one; through the running daemon when
there is one."""

from __future__ import annotations

import click

from daemon.commands.registry import actor_option
from daemon.commands.state import CliState, pass_state
from daemon.loop.operations import call


@click.command("train")
@click.option("--reason", help="Why (recorded with the run).")
@actor_option
@pass_state
def train(state: CliState, reason: str | None, actor: str) -> None:
    """Queue a training run on the rows since the current episode began; the daemon starts it at its next training
    check (with no daemon, the next `driftloop run` does). Refused while a run is running or queued, or with fewer
    than daemon.min_new_rows rows."""
    settings = state.settings
    run = call(settings, "train", actor=actor, reason=reason)
    click.echo(f"run {run['id']} queued: {run['why']}")
    where = f"episode {run['episode']}, rows from {run['first_row_id']} on"
    if run["daemon"]:
        interval = settings.daemon.training_check_interval_s
        click.echo(f"  {where}; the daemon starts it within {interval:g} s (daemon.training_check_interval_s)")
    else:
        click.echo(f"  {where}; no daemon runs: the next `driftloop run` starts it")


@click.command("cancel")
@click.argument("run_id", metavar="RUN", type=int)
@click.option("--reason", help="Why (recorded with the run).")
@actor_option
@pass_state
def cancel(state: CliState, run_id: int, reason: str | None, actor: str) -> None:
    """Cancel training run RUN: a queued one at once; a running one's training process is stopped. It ends
    `cancelled` and is never retried."""
    run = call(state.settings, "cancel", run=run_id, actor=actor, reason=reason)
    if run["status"] == "running":
        click.echo(f"run {run_id}: its training process is stopping; `driftloop status` shows when it ended")
    else:
        click.echo(f"run {run_id} {run['status']}: {run['reason'] or '-'}")


COMMANDS = [train, cancel]
