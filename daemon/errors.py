"""The daemon package's error tree."""

from __future__ import annotations

from common.errors import DriftloopError


class DaemonError(DriftloopError):
    """Root of the errors raised by the daemon package (the CLI, the running daemon, the service, the demo)."""


class SettingsError(DaemonError):
    """A setting is missing, unknown or has a value that is not allowed."""

    exit_code = 2


class RunRefused(DaemonError):
    """An operator's `driftloop train` or `driftloop cancel` that the training runs' state does not allow."""
