"""bench/feedback_loop.py: the simulated people send what the regimes say, the monitor reads the stream as the
daemon does, and the quick run gives every figure the issue asks for."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bench.feedback_loop import REGIMES, ServedRow, feedback, monitor_rows, split_of
from ingest.datasets import LabelledText

ROOT = Path(__file__).resolve().parents[2]


def served(count: int, wrong_every: int) -> list[ServedRow]:
    items = [LabelledText(f"t{i}", f"text {i}", "a", datetime(2020, 1, 1, tzinfo=UTC), "g") for i in range(count)]
    return [ServedRow(item, "b" if i % wrong_every == 0 else "a", 0.9) for i, item in enumerate(items)]


def test_corrections_follow_the_rates_users_have() -> None:
    stream = served(20_000, wrong_every=2)  # half wrong
    sent = feedback("corrections", stream, random.Random(0))
    kinds = [kind for _, kind in sent]
    assert kinds.count("correction") / 10_000 == pytest.approx(0.30, abs=0.02)
    assert kinds.count("confirmation") / 10_000 == pytest.approx(0.05, abs=0.01)
    assert kinds.count("audit") / 20_000 == pytest.approx(0.03, abs=0.005)
    assert all(stream[index].predicted != "a" for index, kind in sent if kind == "correction")
    assert {kind for _, kind in feedback("audit_only", stream, random.Random(0))} == {"audit"}
    assert len(feedback("full", stream, random.Random(0))) == 20_000


def test_the_monitor_reads_an_audit_label_before_a_correction_and_the_prediction_otherwise() -> None:
    stream = served(4, wrong_every=2)  # rows 0 and 2 wrong (predicted "b", truly "a")
    rows = monitor_rows(stream, [(0, "correction"), (0, "audit"), (1, "confirmation"), (3, "correction")])
    assert rows.label.to_pylist() == ["a", "a", "b", "a"], "row 2: nobody labelled it, its prediction stands"
    assert rows.prediction.to_pylist() == ["b", "a", "b", "a"]


def test_rows_are_split_as_ingest_splits_them() -> None:
    assert split_of("audit", "x") == "holdout"
    assert {split_of(kind, "x") for kind in ("correction", "confirmation")} == {"train"}
    held = sum(split_of("label", f"row-{i}") == "holdout" for i in range(5_000)) / 5_000
    assert held == pytest.approx(0.2, abs=0.02)


@pytest.mark.slow
def test_the_quick_run_reports_every_figure(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "bench/feedback_loop.py", "--quick", "--no-service"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1_500, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.splitlines()[-1])
    keys = {"detected", "delay_rows", "events_per_shift", "false_alarms", "gain_pts", "gap_to_oracle_pts",
            "forgetting_pts", "estimate_error_pts"}  # fmt: skip
    assert set(report["scenarios"]) == {"health_news", "sentiment_domains"}
    for regimes in report["scenarios"].values():
        assert all(keys <= set(regimes[regime]) for regime in REGIMES)
        assert regimes["full"]["detected"], "with every label the shift is seen"
        assert regimes["audit_only"]["updated"] is False, "audits alone are held out: nothing to train on"
        assert "gap_to_same_count_pts" in regimes["corrections"]
