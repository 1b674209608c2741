"""`driftloop drift ...`: the monitor's state, feeding it stored rows, and replaying history."""

from __future__ import annotations

import json
from datetime import datetime

import click

from daemon.cli import CliState, pass_state
from daemon.errors import DriftloopError
from daemon.jobs import check_drift
from drift.backtest import Score, backtest_store
from drift.events import SignalReading
from drift.store import ensure_schema, load_monitor
from ingest.store import FeedbackStore


@click.group("drift")
def drift_group() -> None:
    """Watch the stored feedback stream for drift."""


@drift_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_state
def status(state: CliState, as_json: bool) -> None:
    """The monitor's phase and every signal's value at the last check against its threshold."""
    with FeedbackStore(state.settings.store_path, state.settings.ingest) as store:
        ensure_schema(store.con)
        current = load_monitor(store.con, state.settings.drift).status()
    if as_json:
        click.echo(json.dumps(current.as_dict(), indent=2, default=str))
        return
    left = f", {current.rows_left_in_phase} rows left" if current.rows_left_in_phase is not None else ""
    click.echo(f"phase {current.phase}{left}; {current.rows_seen} rows seen (last row {current.last_row_id})")
    click.echo(f"events so far: {current.events} (last at row {current.last_event_row_id})")
    for reading in current.readings:
        click.echo(_reading_line(reading))


def _reading_line(reading: SignalReading) -> str:
    value = "   n/a" if reading.value is None else f"{reading.value:8.4f}"
    mark = "BEYOND" if reading.beyond else "ok"
    alarm = "" if reading.detector_alarm is None else f"  detector {'fired' if reading.detector_alarm else 'quiet'}"
    return (
        f"  {reading.name:<11} {value}  threshold {reading.direction} {reading.threshold:g}  {mark:<6}"
        f"  beyond in {reading.exceeded_checks} recent checks{alarm}"
    )


@drift_group.command("check")
@pass_state
def check(state: CliState) -> None:
    """Feed the monitor the stored rows it has not seen yet, save its state, print new drift events."""
    with FeedbackStore(state.settings.store_path, state.settings.ingest) as store:
        checked = check_drift(store.con, state.settings.drift)
    click.echo(f"{checked.rows} new rows checked; {len(checked.events)} drift events")
    for event in checked.events:
        click.echo(event.describe())


@drift_group.command("backtest")
@click.option("--from", "start", help="First row id or ISO time to replay (inclusive).")
@click.option("--to", "end", help="Last row id (inclusive) or ISO time (exclusive).")
@click.option("--change-points", help="Comma-separated row ids or ISO times where the stream is known to shift.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_state
def backtest(state: CliState, start: str | None, end: str | None, change_points: str | None, as_json: bool) -> None:
    """Replay stored rows through the configured monitor and single river detectors; report delays and false alarms."""
    points = [_row_or_time(point, "--change-points") for point in (change_points or "").split(",") if point.strip()]
    with FeedbackStore(state.settings.store_path, state.settings.ingest) as store:
        ensure_schema(store.con)
        report = backtest_store(
            store.con,
            state.settings.drift,
            None if start is None else _row_or_time(start, "--from"),
            None if end is None else _row_or_time(end, "--to"),
            points,
        )
    scores = (report.monitor, *report.baselines)
    if as_json:
        payload = {"change_points": report.change_points, "scores": [_score_dict(score) for score in scores]}
        click.echo(json.dumps({**payload, "events": [event.evidence() for event in report.events]}, indent=2))
        return
    for event in report.events:
        click.echo(event.describe())
    click.echo(f"change points: {list(report.change_points) or 'none given'}")
    click.echo(f"{'detector':<10} {'events':>6} {'false alarms/10k':>17} {'median delay':>13} {'rows/s':>10}")
    for score in scores:
        delay = "n/a" if score.median_delay is None else f"{score.median_delay:.0f}"
        click.echo(
            f"{score.name:<10} {len(score.event_rows):>6} {score.false_alarms_per_10k:>17.2f} {delay:>13}"
            f" {score.rows_per_s:>10,.0f}"
        )


def _score_dict(score: Score) -> dict[str, object]:
    return {
        "name": score.name,
        "event_rows": score.event_rows,
        "delays": score.delays,
        "false_alarms_per_10k": score.false_alarms_per_10k,
        "median_delay_rows": score.median_delay,
        "rows_per_s": score.rows_per_s,
    }


def _row_or_time(value: str, flag: str) -> int | datetime:
    text = value.strip()
    if text.isdigit():
        return int(text)
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise DriftloopError(f"{flag} {value!r} is neither a row id nor an ISO time such as 2014-06-01") from None


COMMANDS = [drift_group]
