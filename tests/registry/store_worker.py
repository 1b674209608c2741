"""Child processes of the concurrency test: one publishes versions repeatedly, the other reads `:latest` in a loop."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def publish(home: Path, name: str, count: int, source: Path) -> dict[str, int]:
    from registry.store import ModelStore

    store = ModelStore(home)
    for i in range(count):
        store.publish(name, f"v{i + 1}", {"model": source}, {"stage": "test"}, {"i": i})
    return {"published": count}


def read(name: str, done: Path) -> dict[str, object]:
    import bentoml

    reads, errors, seen = 0, [], set()
    while not done.exists() or reads == 0:
        try:
            model = bentoml.models.get(f"{name}:latest")
            files = sorted(p.name for p in (Path(model.path) / "model").iterdir())
            assert files, f"{model.tag} has an empty model folder"
            seen.add(str(model.tag.version))
        except Exception as exc:  # counted: the test expects none
            if "no Models with name" not in str(exc) and "is not found" not in str(exc) or seen:
                errors.append(f"{type(exc).__name__}: {exc}")
        reads += 1
        time.sleep(0.001)
    return {"reads": reads, "errors": errors[:5], "error_count": len(errors), "versions_seen": len(seen)}


if __name__ == "__main__":
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    role = sys.argv[1]
    if role == "publish":
        result: dict[str, object] = dict(publish(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), Path(sys.argv[5])))
    else:
        result = read(sys.argv[3], Path(sys.argv[4]))
    print(json.dumps(result))
