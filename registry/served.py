"""What the service really serves, written by the service beside the model store and read by `status`, so an
operator sees when the registry's production and the served model differ (a new model that fails to load)."""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

SERVED_DIR = "served"


@dataclass(frozen=True)
class ServedState:
    version: str | None  # the production version in memory, e.g. v3-p7; None before the first load
    source: str | None  # the candidate it came from, e.g. driftloop-news:v3
    failed_version: str | None  # the newest version that could not be loaded, while it is not served
    error: str | None  # why it could not be loaded
    pid: int
    updated_at: str


def served_state_path(bentoml_home: Path, name: str) -> Path:
    return bentoml_home / SERVED_DIR / f"{name}.json"


def write_served(bentoml_home: Path, name: str, version: str | None, source: str | None,
                 failed_version: str | None = None, error: str | None = None) -> None:  # fmt: skip
    """Replace the state atomically (a reader sees the old file or the new one)."""
    state = ServedState(version, source, failed_version, error, os.getpid(), datetime.now(UTC).isoformat())
    path = served_state_path(bentoml_home, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as out:
        json.dump(asdict(state), out)
    os.replace(partial, path)


def read_served(bentoml_home: Path, name: str) -> ServedState | None:
    """The last state a service wrote, or None when no service has run on this store."""
    try:
        return ServedState(**json.loads(served_state_path(bentoml_home, name).read_text()))
    except FileNotFoundError:
        return None
