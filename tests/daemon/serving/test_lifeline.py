"""A service worker whose arbiter is gone ends: at once when it died before the worker started, by the kernel's
SIGTERM when it dies later (tests/daemon/serving/test_serve.py kills a real one)."""

from __future__ import annotations

import os
import subprocess
import sys

from daemon.serving.lifeline import ARBITER_ENV

WORKER = "from daemon.serving.lifeline import exit_with_arbiter; print(exit_with_arbiter())"


def start_worker(arbiter: int) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, ARBITER_ENV: str(arbiter)}
    return subprocess.run(
        [sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_a_worker_of_a_live_arbiter_runs_on() -> None:
    worker = start_worker(arbiter=os.getpid())  # this process is the worker's parent
    assert (worker.returncode, worker.stdout.strip()) == (0, "True")


def test_a_worker_whose_arbiter_died_before_it_started_ends_at_once() -> None:
    worker = start_worker(arbiter=os.getpid() + 1_000_000)  # not its parent: the arbiter that started it is gone
    assert worker.returncode == 1
    assert worker.stdout == ""
