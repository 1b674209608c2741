"""The training process: progress over JSON lines, cancel, kill, and what each leaves behind."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.trainer.conftest import make_rows, settings_for
from trainer.data import select_rows
from trainer.errors import TrainingCancelled, TrainingFailed
from trainer.job import LOG_FILE, PROGRESS_FILE, RECORD_FILE, run_dir_for
from trainer.process import start, train
from trainer.results import read_record

LABELS = ("alpha", "beta")


def test_a_run_in_a_child_process_reports_progress_and_returns_the_candidate(tmp_path: Path, tiny_base: Path) -> None:
    settings = settings_for(tiny_base, max_epochs=2)
    data = select_rows(make_rows(LABELS, 20, 0) + make_rows(LABELS, 5, 0, "holdout"), [], settings)
    events: list[dict[str, Any]] = []
    candidate = train(settings, data, None, None, tmp_path / "cand", on_progress=events.append)
    kinds = [event["event"] for event in events]
    assert kinds[0] == "phase"
    assert kinds[-1] == "done"
    progress = [event for event in events if event["event"] == "progress"]
    assert progress
    assert {"step", "loss", "grad_norm", "lr", "samples_per_s"} <= set(progress[0])
    assert [event["epoch"] for event in events if event["event"] == "validation"] == [1, 2]
    assert candidate.path == tmp_path / "cand"
    assert (candidate.model_dir / "model.safetensors").is_file()
    run_dir = run_dir_for(candidate.path)
    assert read_record(run_dir / RECORD_FILE).status == "succeeded"
    assert len((run_dir / PROGRESS_FILE).read_text().splitlines()) == len(events)


@pytest.mark.parametrize("how", ["cancel", "kill"])
def test_a_run_stopped_midway_leaves_a_failed_record_and_no_candidate(tmp_path: Path, tiny_base: Path, how: str
                                                                      ) -> None:  # fmt: skip
    settings = settings_for(tiny_base, max_epochs=500, patience=500, learning_rate=1e-6)
    data = select_rows(make_rows(LABELS, 20, 0) + make_rows(LABELS, 5, 0, "holdout"), [], settings)
    out_dir = tmp_path / "cand"
    process = start(settings, data, None, None, out_dir)
    events = process.events()
    for event in events:
        if event["event"] == "validation":
            break
    if how == "cancel":
        threading.Thread(target=process.cancel).start()
    else:
        process.popen.kill()
    expected = TrainingCancelled if how == "cancel" else TrainingFailed
    with pytest.raises(expected) as failure:
        process.wait()
    record = read_record(run_dir_for(out_dir) / RECORD_FILE)
    assert record.status == ("cancelled" if how == "cancel" else "failed")
    assert failure.value.record_path == str(run_dir_for(out_dir) / RECORD_FILE)
    if how == "kill":
        assert record.reason is not None
        assert "killed by signal 9" in record.reason
    assert not out_dir.exists()
    assert [path.name for path in tmp_path.iterdir()] == [out_dir.name + ".run"]
    assert (run_dir_for(out_dir) / LOG_FILE).is_file()


def test_a_failing_run_reports_why(tmp_path: Path, tiny_base: Path) -> None:
    settings = settings_for(tiny_base, max_length=512, stride=8)
    data = select_rows(make_rows(LABELS, 5, 0) + make_rows(LABELS, 2, 0, "holdout"), [], settings)
    with pytest.raises(TrainingFailed, match="max_length=512"):
        train(settings, data, None, None, tmp_path / "cand")
    assert read_record(run_dir_for(tmp_path / "cand") / RECORD_FILE).status == "failed"
    assert not (tmp_path / "cand").exists()
