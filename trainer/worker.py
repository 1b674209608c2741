"""The training process: `python -m trainer.worker RUN_DIR`; progress as JSON lines on stdout, logs on stderr.

SIGTERM asks the run to stop at the next optimizer step (exit code 3); a failure exits with 1.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from types import FrameType
from typing import Any, TextIO

from trainer.errors import TrainingCancelled
from trainer.job import RECORD_FILE, read_job
from trainer.results import RunRecord, RunStatus, write_json

log = logging.getLogger(__name__)
EXIT_FAILED = 1
EXIT_CANCELLED = 3


class _Stop:
    """The first signal asks the run to stop at the next step; a second one exits at once."""

    requested = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise SystemExit(EXIT_CANCELLED)
        self.requested = True


def _channel() -> TextIO:
    """A private copy of stdout for progress; fd 1 then points at stderr, so stray prints cannot corrupt it."""
    progress_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(progress_fd, "w", buffering=1, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    from pathlib import Path

    args = sys.argv[1:] if argv is None else argv
    run_dir = Path(args[0])
    channel = _channel()
    logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    stop = _Stop()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    started = time.time()
    job = read_job(run_dir)
    record = RunRecord(status="running", out_dir=str(job.out_dir), started=started, pid=os.getpid())
    write_json(run_dir / RECORD_FILE, record)

    def report(event: dict[str, Any]) -> None:
        if channel.closed:
            return
        try:
            channel.write(json.dumps({"t": round(time.time() - started, 3), **event}) + "\n")
        except BrokenPipeError:  # the process that started the run is gone: stop as if asked to
            log.warning("the progress pipe is closed (the daemon is gone); cancelling the run")
            stop.requested = True
            with contextlib.suppress(BrokenPipeError):
                channel.close()

    from trainer.pipeline import run_job  # imports torch: after the record says "running"

    try:
        candidate = run_job(job, report, lambda: stop.requested)
    except TrainingCancelled as exc:
        write_json(run_dir / RECORD_FILE, _ended(record, "cancelled", str(exc), EXIT_CANCELLED))
        report({"event": "cancelled", "reason": str(exc)})
        return EXIT_CANCELLED
    except Exception as exc:
        log.exception("training run failed")
        reason = f"{type(exc).__name__}: {exc}"
        write_json(run_dir / RECORD_FILE, _ended(record, "failed", reason, EXIT_FAILED))
        report({"event": "failed", "reason": reason})
        return EXIT_FAILED
    write_json(run_dir / RECORD_FILE, _ended(record, "succeeded", None, 0))
    report({"event": "done", "candidate": str(candidate.path)})
    return 0


def _ended(record: RunRecord, status: RunStatus, reason: str | None, code: int) -> RunRecord:
    return dataclasses.replace(record, status=status, ended=time.time(), reason=reason, exit_code=code)


if __name__ == "__main__":
    sys.exit(main())
