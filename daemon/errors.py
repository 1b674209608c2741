"""Errors the CLI turns into one line and an exit code."""

from __future__ import annotations


class DriftloopError(Exception):
    """Root of the errors raised by the daemon package."""

    exit_code = 1


class SettingsError(DriftloopError):
    """A setting is missing, unknown or has a value that is not allowed."""

    exit_code = 2
