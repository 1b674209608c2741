"""The registry package's error tree."""

from __future__ import annotations


class RegistryError(Exception):
    """Root of the errors raised by the registry package."""

    exit_code = 1


class UnknownVersion(RegistryError):
    """No model with the version given is registered."""


class NotAllowed(RegistryError):
    """The action does not fit the model's stage (approving a rejected model, a gate failure without --force)."""


class StoreError(RegistryError):
    """The BentoML model store cannot be read or written (missing model, broken `latest` pointer, bad files)."""


class StoreBusy(RegistryError):
    """The DuckDB store file is held by another process (the running daemon)."""


class ServiceConfigError(RegistryError):
    """The service was started without a usable configuration."""
