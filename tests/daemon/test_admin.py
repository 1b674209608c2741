"""Whether a daemon runs is told by its lock, not by a socket file a killed daemon left behind."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from daemon.errors import DaemonError
from daemon.loop.admin import SOCKET_NAME, ask_daemon, daemon_lock, daemon_running


def test_the_lock_tells_whether_a_daemon_runs(tmp_path: Path) -> None:
    assert not daemon_running(tmp_path)
    with daemon_lock(tmp_path):
        assert daemon_running(tmp_path)
        second = daemon_lock(tmp_path)
        with pytest.raises(DaemonError, match=f"a daemon \\(pid {os.getpid()}\\) already runs"):
            second.__enter__()
    assert not daemon_running(tmp_path)


def test_a_stale_socket_without_a_daemon_means_no_daemon(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(str(tmp_path / SOCKET_NAME))  # bound, never listening: as a SIGKILLed daemon leaves it
    assert ask_daemon(tmp_path, "status") is None
