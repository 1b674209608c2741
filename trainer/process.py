"""Running a training job in a child process: start, follow its progress, cancel, collect the candidate.

This module does not import torch; the daemon calls it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from trainer.data import TrainingData
from trainer.errors import TrainerError, TrainingCancelled, TrainingFailed
from trainer.job import LOG_FILE, PROGRESS_FILE, RECORD_FILE, Job, run_dir_for, write_job
from trainer.results import Candidate, RunRecord, load_candidate, read_record, write_json
from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

Progress = Callable[[dict[str, Any]], None]


class TrainingProcess:
    """A running training job; iterate `events()` or call `wait()`; `cancel()` from any thread."""

    def __init__(self, job: Job, run_dir: Path) -> None:
        self.job, self.run_dir = job, run_dir
        self.cancelled = False
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "OMP_NUM_THREADS": str(job.settings.torch_threads),
        }
        self._log = open(run_dir / LOG_FILE, "ab")  # noqa: SIM115 (closed in wait)
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "trainer.worker", str(run_dir)],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            text=True,
            encoding="utf-8",
        )
        log.info("training process %d started for %s", self.popen.pid, job.out_dir)

    def events(self) -> Iterator[dict[str, Any]]:
        """Progress events until the process ends (each also appended to progress.jsonl)."""
        assert self.popen.stdout is not None
        with open(self.run_dir / PROGRESS_FILE, "a", encoding="utf-8") as saved:
            for line in self.popen.stdout:
                saved.write(line)
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    log.warning("unreadable progress line from the training process: %r", line[:200])

    def cancel(self) -> None:
        """Ask the process to stop; kill it when it has not stopped after `cancel_grace_s`."""
        if self.popen.poll() is not None:
            return
        self.cancelled = True
        self.popen.send_signal(signal.SIGTERM)
        timer = threading.Timer(self.job.settings.cancel_grace_s, self._kill)
        timer.daemon = True
        timer.start()

    def _kill(self) -> None:
        if self.popen.poll() is None:
            log.warning("training process %d did not stop in time; killing it", self.popen.pid)
            self.popen.kill()

    def wait(self, on_progress: Progress | None = None) -> Candidate:
        """Follow the run to its end; the candidate, or TrainingFailed/TrainingCancelled with the record written."""
        for event in self.events():
            if on_progress is not None:
                on_progress(event)
        code = self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()
        return finish(self.job, self.run_dir, code, self.cancelled)


def finish(job: Job, run_dir: Path, code: int, cancelled: bool) -> Candidate:
    """Turn an ended process into a candidate, or into a failed record (and no candidate directory)."""
    from trainer.pipeline import partial_dir_for

    shutil.rmtree(partial_dir_for(job.out_dir), ignore_errors=True)
    record_path = run_dir / RECORD_FILE
    record = read_record(record_path) if record_path.is_file() else None
    if code == 0 and record is not None and record.status == "succeeded":
        return load_candidate(job.out_dir)
    if record is None or record.status in ("running", "succeeded"):
        how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
        record = RunRecord(
            status="cancelled" if cancelled else "failed",
            out_dir=str(job.out_dir),
            started=record.started if record else time.time(),
            ended=time.time(),
            pid=record.pid if record else None,
            reason=f"training process {how}; its log is {run_dir / LOG_FILE}",
            exit_code=code,
        )
        write_json(record_path, record)
    message = f"training run {record.status}: {record.reason}"
    if record.status == "cancelled":
        raise TrainingCancelled(message, str(record_path))
    raise TrainingFailed(message, str(record_path))


def start(
    settings: TrainerSettings, data: TrainingData, base: Path | None, parent_adapter: Path | None, out_dir: Path
) -> TrainingProcess:
    """Write the job next to `out_dir` (in `<out_dir>.run/`) and start the training process."""
    run_dir = run_dir_for(out_dir)
    if out_dir.exists() or run_dir.exists():
        raise TrainerError(f"{out_dir} or {run_dir} already exists; give every run its own output directory")
    run_dir.mkdir(parents=True)
    job = Job(settings, data, base or settings.base_model_path(), parent_adapter, out_dir)
    write_job(run_dir, job)
    return TrainingProcess(job, run_dir)


def train(
    settings: TrainerSettings,
    data: TrainingData,
    base: Path | None,
    parent_adapter: Path | None,
    out_dir: Path,
    *,
    on_progress: Progress | None = None,
    cancel: threading.Event | None = None,
) -> Candidate:
    """Train a candidate in a child process and wait for it; setting `cancel` stops the run."""
    process = start(settings, data, base, parent_adapter, out_dir)
    if cancel is not None:
        threading.Thread(target=_watch, args=(cancel, process), daemon=True).start()
    return process.wait(on_progress)


def _watch(cancel: threading.Event, process: TrainingProcess) -> None:
    while process.popen.poll() is None:
        if cancel.wait(0.2):
            process.cancel()
            return
