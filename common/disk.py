"""What `driftloop gc` deletes, in one shape for the registry's store versions and the daemon's run folders."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Deletion:
    """One thing gc deletes (or would, in a dry run): a BentoML tag or a folder, why, and its size."""

    kind: str  # "candidate", "production" (BentoML store versions) or "run" (a training run's folder)
    target: str
    reason: str
    bytes: int
    model: str | None = None  # the registered model it belongs to, when there is one


def folder_bytes(path: Path) -> int:
    """Bytes of the files under `path` (links not followed); 0 when it is gone."""
    total = 0
    for folder, _, names in os.walk(path):
        for name in names:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                continue
    return total
