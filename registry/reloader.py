"""The served model and its hot swap: a thread polls `<name>:latest` and swaps a newly published model in."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from registry.store import ModelStore, StoredModel

log = logging.getLogger(__name__)
M = TypeVar("M")


@dataclass(frozen=True)
class Loaded(Generic[M]):
    version: str  # the production version, e.g. v3-p7
    source: str  # the candidate it was published from, e.g. driftloop-news:v3
    model: M


class ModelSlot(Generic[M]):
    """Holds the loaded model; a request reads `current` once, so a swap never mixes two models in one answer."""

    def __init__(
        self,
        store: ModelStore,
        name: str,
        load: Callable[[StoredModel], M],
        interval_s: float,
        on_swap: Callable[[Loaded[M]], None] = lambda _loaded: None,
        on_failure: Callable[[str, Exception], None] = lambda _version, _error: None,
    ) -> None:
        self.store = store
        self.name = name
        self.load = load
        self.interval_s = interval_s
        self.on_swap = on_swap
        self.on_failure = on_failure
        self.current: Loaded[M] | None = None
        self.failed_version: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> bool:
        """Load `name:latest` if it is not what is served; True when a new model was swapped in."""
        version = self.store.latest_version(self.name)
        served = self.current.version if self.current else None
        if version is None or version == served or version == self.failed_version:
            return False
        try:
            stored = self.store.get(f"{self.name}:{version}")
            source = str(stored.metadata.get("source", ""))
            loaded = Loaded(version=stored.version, source=source, model=self.load(stored))
        except Exception as exc:
            self.failed_version = version
            log.exception("cannot load %s:%s; still serving %s", self.name, version, served or "nothing")
            self.on_failure(version, exc)
            return False
        self.current = loaded
        self.on_swap(loaded)
        log.info("now serving %s:%s (from %s)", self.name, loaded.version, loaded.source)
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="driftloop-model-poll", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5.0, self.interval_s * 2))

    def _poll(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.refresh()
            except Exception:  # the poller must outlive a bad read of the store
                log.exception("polling %s:latest failed", self.name)
