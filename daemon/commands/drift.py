"""`driftloop drift ...`: the monitor's state, feeding it stored rows, and replaying history; through the running
daemon when there is one."""

from __future__ import annotations

import json
from typing import Any

import click

from daemon.commands.state import CliState, pass_state
from daemon.loop.operations import call
from daemon.reports.backtest import row_or_time


@click.group("drift")
def drift_group() -> None:
    """Watch the served traffic (or the stored feedback, drift.stream) for drift."""


@drift_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_state
def drift_status(state: CliState, as_json: bool) -> None:
    """The monitor's phase and every signal's value at the last check against its threshold, with the rows
    each signal watches."""
    current = call(state.settings, "drift_status")
    if as_json:
        click.echo(json.dumps(current, indent=2))
        return
    left = f", {current['rows_left_in_phase']} rows left" if current["rows_left_in_phase"] is not None else ""
    click.echo(f"phase {current['phase']}{left}; {current['rows_seen']} rows seen (last row {current['last_row_id']})")
    click.echo(f"events so far: {current['events']} (last at row {current['last_event_row_id']})")
    click.echo(f"stream: {current['stream']} (drift.stream)")
    for reading in current["readings"]:
        click.echo(_reading_line(reading))
        click.echo(f"      watches {current['watches'][reading['name']]}")


def _reading_line(reading: dict[str, Any]) -> str:
    value = "   n/a" if reading["value"] is None else f"{reading['value']:8.4f}"
    mark = "BEYOND" if reading["beyond"] else "ok"
    fired = reading["detector_alarm"]
    alarm = "" if fired is None else f"  detector {'fired' if fired else 'quiet'}"
    return (
        f"  {reading['name']:<11} {value}  threshold {reading['direction']} {reading['threshold']:g}  {mark:<6}"
        f"  beyond in {reading['exceeded_checks']} recent checks{alarm}"
    )


@drift_group.command("check")
@pass_state
def drift_check(state: CliState) -> None:
    """Feed the monitor the stored rows it has not seen yet, save its state, print new drift events."""
    checked = call(state.settings, "drift_check")
    click.echo(f"{checked['rows']} new rows checked; {len(checked['events'])} drift events")
    for event in checked["events"]:
        click.echo(event)


@drift_group.command("backtest")
@click.option("--from", "start", help="First row id or ISO time to replay (inclusive).")
@click.option("--to", "end", help="Last row id (inclusive) or ISO time (exclusive).")
@click.option("--change-points", help="Comma-separated row ids or ISO times where the stream is known to shift.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_state
def drift_backtest(
    state: CliState, start: str | None, end: str | None, change_points: str | None, as_json: bool
) -> None:
    """Replay stored rows through the configured monitor and single river detectors; report delays and false alarms."""
    points = [row_or_time(point, "--change-points") for point in (change_points or "").split(",") if point.strip()]
    report = call(
        state.settings,
        "backtest",
        start=None if start is None else row_or_time(start, "--from"),
        end=None if end is None else row_or_time(end, "--to"),
        change_points=points,
    )
    if as_json:
        click.echo(json.dumps({key: report[key] for key in ("change_points", "scores", "events")}, indent=2))
        return
    for line in report["described"]:
        click.echo(line)
    click.echo(f"change points: {report['change_points'] or 'none given'}")
    click.echo(f"{'detector':<10} {'events':>6} {'false alarms/10k':>17} {'median delay':>13} {'rows/s':>10}")
    for score in report["scores"]:
        delay = "n/a" if score["median_delay_rows"] is None else f"{score['median_delay_rows']:.0f}"
        click.echo(
            f"{score['name']:<10} {len(score['event_rows']):>6} {score['false_alarms_per_10k']:>17.2f} {delay:>13}"
            f" {score['rows_per_s']:>10,.0f}"
        )


COMMANDS = [drift_group]
