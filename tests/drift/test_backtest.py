from __future__ import annotations

from drift.backtest import backtest, baseline_events, score_detector
from drift.settings import DriftSettings
from drift.synthetic import synthetic_stream


def test_score_counts_delays_shifts_and_false_alarms() -> None:
    result = score_detector("x", [50, 1_020, 1_100, 3_500], [1_000, 3_000, 6_000], rows=10_000, seconds=0.5)

    assert result.delays == (20, 500, None)
    assert result.events_per_shift == (2, 1, 0)
    assert result.false_alarms == 2  # one before the first shift, one repeat
    assert result.false_alarms_per_10k == 2.0
    assert result.median_delay == 260
    assert result.rows_per_s == 20_000


def test_backtest_reports_the_monitor_and_the_baselines() -> None:
    stream = synthetic_stream("abrupt", 20_000, (8_000,), seed=0)

    report = backtest(stream.rows, DriftSettings(), stream.change_points)

    assert [event.row_id for event in report.events] == [8_199]
    assert report.monitor.delays == (199,)
    assert report.monitor.false_alarms == 0
    assert [baseline.name for baseline in report.baselines] == ["adwin", "ddm", "hddm_a"]
    adwin = report.baselines[0]
    assert adwin.event_rows == tuple(baseline_events(stream.rows, "adwin"))
    assert adwin.delays[0] is not None
