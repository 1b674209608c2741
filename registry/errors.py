"""The registry package's error tree."""

from __future__ import annotations

from common.errors import DriftloopError


class RegistryError(DriftloopError):
    """Root of the errors raised by the registry package."""


class UnknownVersion(RegistryError):
    """No model with the version given is registered."""


class NotAllowed(RegistryError):
    """The action does not fit the model's stage (approving a rejected model, a gate failure without --force)."""


class StoreError(RegistryError):
    """The BentoML model store cannot be read or written (missing model, broken `latest` pointer, bad files)."""
