"""The BentoML model store, written safely: build in a staging store, rename into place, swap `latest` under a lock.

BentoML's own save is not safe next to readers or other writers (it writes `latest` in place and can expose a
half-copied version), and labels cannot change after creation, so every publication is a new version.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import bentoml  # noqa: E402
from bentoml._internal.models.model import ModelStore as BentoStore  # noqa: E402
from bentoml._internal.tag import Tag  # noqa: E402
from bentoml.exceptions import BentoMLException  # noqa: E402

from common.disk import folder_bytes  # noqa: E402
from registry.errors import StoreError  # noqa: E402

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredModel:
    tag: str
    version: str
    path: Path
    labels: dict[str, str]
    metadata: dict[str, Any]
    created: datetime


class ModelStore:
    """One BentoML home: `<home>/models` is BentoML's store, `<home>/staging` the same-filesystem build area."""

    def __init__(self, bentoml_home: Path) -> None:
        self.home = bentoml_home
        self.models = bentoml_home / "models"
        self.staging = bentoml_home / "staging"

    def publish(
        self,
        name: str,
        version: str,
        parts: Mapping[str, Path],
        labels: Mapping[str, str],
        metadata: Mapping[str, Any],
        make_latest: bool = True,
    ) -> StoredModel:
        """Save `name:version` with each directory of `parts` copied under its key; readers never see it half-done.
        With `make_latest` False, `name:latest` stays where it is (`point_latest` moves it later)."""
        for key, source in parts.items():
            if not source.is_dir():
                raise StoreError(f"cannot publish {name}:{version}: {key} directory {source} does not exist")
        self.models.mkdir(parents=True, exist_ok=True)
        self.staging.mkdir(parents=True, exist_ok=True)
        staged = self._build(name, version, parts, labels, metadata)
        target = self.models / name / version
        with self._lock(name):
            if target.exists():
                shutil.rmtree(staged, ignore_errors=True)
                raise StoreError(f"{name}:{version} is already in the store {self.models}; versions are never reused")
            target.parent.mkdir(exist_ok=True)
            os.rename(staged, target)
            if make_latest:
                self._point_latest(name, version)
        log.info("published %s:%s", name, version)
        return self.get(f"{name}:{version}")

    def get(self, tag: str) -> StoredModel:
        """`name:version` or `name:latest` (or `name`), read through BentoML's own store."""
        try:
            model = BentoStore(self.models).get(tag)
        except BentoMLException as exc:
            raise StoreError(f"{tag} is not in the BentoML store {self.models}: {exc}") from None
        return StoredModel(
            tag=str(model.tag),
            version=str(model.tag.version),
            path=Path(model.path),
            labels=dict(model.info.labels),
            metadata=dict(model.info.metadata),
            created=model.creation_time,
        )

    def latest_version(self, name: str) -> str | None:
        """The version `name:latest` points at, read without parsing the model (cheap enough to poll)."""
        try:
            return (self.models / name / "latest").read_text().strip() or None
        except FileNotFoundError:
            return None

    def versions(self, name: str) -> list[StoredModel]:
        """Every version of `name`, oldest first."""
        folder = self.models / name
        if not folder.is_dir():
            return []
        found = [self.get(f"{name}:{path.name}") for path in folder.iterdir() if path.is_dir()]
        return sorted(found, key=lambda model: model.created)

    def remove(self, name: str, version: str) -> None:
        """Take `name:version` out of the store (readers see it whole or not at all); `latest` moves to the newest
        version left, or goes when none is."""
        with self._lock(name):
            trash = self._move_aside(name, version, "removed")
            if self.latest_version(name) == version:
                left = self.versions(name)
                if left:
                    self._point_latest(name, left[-1].version)
                else:
                    (self.models / name / "latest").unlink()
        shutil.rmtree(trash)
        log.info("removed %s:%s", name, version)

    def delete(self, name: str, version: str) -> int:
        """Delete `name:version` for good (gc), under the publisher's lock; the version `name:latest` points at is
        refused. Returns the bytes freed."""
        if version in ("", ".", "..", "latest") or "/" in version:
            raise StoreError(f"{name}:{version!r} is not a version that can be deleted")
        with self._lock(name):
            if self.latest_version(name) == version:
                raise StoreError(f"{name}:{version} is what {name}:latest points at; it is never deleted")
            if not (self.models / name / version).is_dir():
                raise StoreError(f"{name}:{version} is not in the BentoML store {self.models}")
            trash = self._move_aside(name, version, "deleted")
        freed = folder_bytes(trash)
        shutil.rmtree(trash)
        log.info("deleted %s:%s (%d bytes)", name, version, freed)
        return freed

    def _move_aside(self, name: str, version: str, why: str) -> Path:
        """Rename `name:version` out of the store into the staging area (the caller holds the name's lock); readers
        see it whole or not at all. Returns where it went, to be deleted outside the lock."""
        trash = self.staging / name / f".{why}-{version}-{os.getpid()}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.models / name / version, trash)
        return trash

    def point_latest(self, name: str, version: str) -> None:
        """Make `name:latest` point at `version` (which must be in the store)."""
        self.get(f"{name}:{version}")
        with self._lock(name):
            self._point_latest(name, version)

    def _build(
        self, name: str, version: str, parts: Mapping[str, Path], labels: Mapping[str, str], metadata: Mapping[str, Any]
    ) -> Path:
        staged = self.staging / name / version
        shutil.rmtree(staged, ignore_errors=True)
        try:
            with bentoml.models.create(
                Tag(name, version), labels=dict(labels), metadata=dict(metadata), _model_store=BentoStore(self.staging)
            ) as model:
                for key, source in parts.items():
                    shutil.copytree(source, Path(model.path) / key)
        except (BentoMLException, ValueError, OSError) as exc:
            shutil.rmtree(staged, ignore_errors=True)
            raise StoreError(f"cannot build {name}:{version} in {self.staging}: {exc}") from exc
        return staged

    def _point_latest(self, name: str, version: str) -> None:
        partial = self.models / name / f".latest.{os.getpid()}.partial"
        partial.write_text(version)
        os.replace(partial, self.models / name / "latest")

    @contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self.staging.mkdir(parents=True, exist_ok=True)
        with open(self.staging / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
