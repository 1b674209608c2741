"""The drift package's error tree."""

from __future__ import annotations

from common.errors import DriftloopError


class DriftError(DriftloopError):
    """Root of the errors raised by the drift package."""


class DriftInputError(DriftError):
    """Rows handed to the monitor break its contract (lengths, order, types)."""


class DriftStateError(DriftError):
    """Stored detector state cannot be read back."""
