"""`driftloop chart`: a PNG of the served model's accuracy and the drift signals along the stored stream."""

from __future__ import annotations

from pathlib import Path

import click

from daemon.commands.state import CliState, pass_state
from daemon.loop.operations import call


@click.command("chart")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="PNG to write (default <home>/chart.png).")
@click.option("--window", default=500, show_default=True, help="Rows in the rolling accuracy window.")
@pass_state
def chart(state: CliState, out: Path | None, window: int) -> None:
    """Write the chart (drawn by the running daemon when there is one)."""
    path = (out or state.settings.home / "chart.png").resolve()
    click.echo(f"wrote {call(state.settings, 'chart', path=str(path), window=window)}")


COMMANDS = [chart]
