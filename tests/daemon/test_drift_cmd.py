"""`driftloop drift check/status/backtest` over rows that went through the real store."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from daemon.cli import cli, register_commands
from drift.synthetic import synthetic_stream
from ingest.records import incoming_table
from ingest.settings import IngestSettings
from ingest.store import FeedbackStore
from tests.ingest.store_helpers import feedback_values

register_commands()
SHIFT = 12_000  # synthetic row index of the error-rate jump; store row ids start at 1


def store_stream(home: Path) -> None:
    values = feedback_values(synthetic_stream("abrupt", 24_000, [SHIFT], seed=3).rows, id_prefix="s")
    with FeedbackStore(home / "driftloop.duckdb", IngestSettings()) as store:
        store.write_batch(incoming_table(values, "t"), {("t", 0): len(values)})


def run(home: Path, *arguments: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home), *arguments], env={"DRIFTLOOP_DRIFT_STREAM": "feedback"})


def test_check_feeds_the_monitor_once_and_status_shows_it(tmp_path: Path) -> None:
    store_stream(tmp_path)
    first = run(tmp_path, "drift", "check")
    assert first.exit_code == 0, first.output
    assert "24000 new rows checked; 1 drift events" in first.stdout
    event_row = int(first.stdout.split("drift at row ")[1].split()[0])
    assert SHIFT + 1 < event_row < SHIFT + 1 + 600
    again = run(tmp_path, "drift", "check")
    assert "0 new rows checked; 0 drift events" in again.stdout
    status = run(tmp_path, "drift", "status", "--json")
    assert status.exit_code == 0, status.output
    shown = json.loads(status.stdout)
    assert (shown["rows_seen"], shown["last_row_id"], shown["events"]) == (24_000, 24_000, 1)
    assert {reading["name"] for reading in shown["readings"]} >= {"error", "label_mix", "length"}
    table = run(tmp_path, "drift", "status")
    assert table.exit_code == 0, table.output
    assert table.stdout.startswith("phase monitoring; 24000 rows seen (last row 24000)")
    assert "stream: feedback (drift.stream)" in table.stdout
    lines = {line.split()[0]: line for line in table.stdout.splitlines()[3::2]}
    assert set(lines) == {reading["name"] for reading in shown["readings"]}
    watches = [line.strip() for line in table.stdout.splitlines()[4::2]]
    assert watches == [f"watches {shown['watches'][reading['name']]}" for reading in shown["readings"]]
    assert all(("BEYOND" in line) == reading["beyond"] for reading in shown["readings"] for line in
               [lines[reading["name"]]])  # fmt: skip

    text_backtest = run(tmp_path, "drift", "backtest", "--change-points", str(SHIFT + 1))
    assert text_backtest.exit_code == 0, text_backtest.output
    assert f"change points: [{SHIFT + 1}]" in text_backtest.stdout
    assert [line.split()[0] for line in text_backtest.stdout.splitlines()][-5:] == [
        "detector", "driftloop", "adwin", "ddm", "hddm_a"
    ]  # fmt: skip


def test_backtest_reports_the_monitor_and_the_baselines(tmp_path: Path) -> None:
    store_stream(tmp_path)
    result = run(tmp_path, "drift", "backtest", "--change-points", str(SHIFT + 1), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    names = [score["name"] for score in report["scores"]]
    assert names[0] == "driftloop"
    assert len(names) > 1
    assert report["scores"][0]["delays"][0] < 600
    assert report["scores"][0]["false_alarms_per_10k"] == 0


def test_bad_change_point_is_one_line(tmp_path: Path) -> None:
    result = run(tmp_path, "drift", "backtest", "--change-points", "soon")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "driftloop: error: --change-points 'soon' is neither a row id nor an ISO time such as 2014-06-01"
    )
