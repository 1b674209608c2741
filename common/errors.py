"""The root of every error driftloop raises on purpose; each package's own root subclasses it."""

from __future__ import annotations


class DriftloopError(Exception):
    """Root of driftloop's errors: the CLI turns any of them into one line on stderr and `exit_code`."""

    exit_code = 1
