"""`driftloop chart`: a PNG of the served model's accuracy and the drift signals along the stored stream."""

from __future__ import annotations

from pathlib import Path

import click

from daemon.cli import CliState, pass_state
from daemon.errors import DriftloopError


@click.command("chart")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="PNG to write (default <home>/chart.png).")
@click.option("--window", default=500, show_default=True, help="Rows in the rolling accuracy window.")
@pass_state
def chart(state: CliState, out: Path | None, window: int) -> None:
    """Write the chart (reads the store file: stop the daemon first)."""
    import duckdb

    from daemon.chart import write_chart

    settings = state.settings
    try:
        con = duckdb.connect(str(settings.store_path), read_only=True)
    except duckdb.IOException as exc:
        raise DriftloopError(f"cannot read {settings.store_path} ({exc}); stop the daemon, then draw it") from None
    try:
        path = write_chart(con, out or settings.home / "chart.png", window, settings.drift)
    finally:
        con.close()
    click.echo(f"wrote {path}")


COMMANDS = [chart]
