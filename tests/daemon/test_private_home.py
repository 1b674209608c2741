"""What driftloop writes is its owner's alone: the home 0700, the store and every file in it 0600."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path


def test_the_home_and_the_store_are_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)  # made before, readable by all
    env = {**os.environ, "DRIFTLOOP_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "daemon", "status"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    created = [path for path in home.rglob("*") if path.is_file()]
    assert created, "the status command created the store"
    assert {path.name: stat.S_IMODE(path.stat().st_mode) for path in created} == dict.fromkeys(
        (path.name for path in created), 0o600
    )
