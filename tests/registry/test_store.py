"""Publishing into the BentoML store: versions appear whole, `latest` moves atomically, readers never fail."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from registry.errors import StoreError
from registry.store import ModelStore

ROOT = Path(__file__).resolve().parents[2]


def test_publish_then_get_latest_through_bentoml(bentoml_home: Path, tiny_models: tuple[Path, ...]) -> None:
    import bentoml

    store = ModelStore(bentoml_home)
    store.publish("driftloop-x", "v1", {"model": tiny_models[0]}, {"stage": "candidate"}, {"metrics": {"f1": 0.5}})
    stored = store.publish("driftloop-x", "v2", {"model": tiny_models[1]}, {"stage": "candidate"}, {"parent": "v1"})
    assert stored.tag == "driftloop-x:v2"
    assert (stored.path / "model" / "config.json").is_file()
    assert store.latest_version("driftloop-x") == "v2"
    latest = bentoml.models.get("driftloop-x:latest")
    assert str(latest.tag) == "driftloop-x:v2"
    assert latest.info.labels == {"stage": "candidate"}
    assert latest.info.metadata == {"parent": "v1"}
    assert [model.version for model in store.versions("driftloop-x")] == ["v1", "v2"]
    assert not list((bentoml_home / "staging" / "driftloop-x").glob("v*")), "staging is emptied by the rename"


def test_a_version_is_never_reused(bentoml_home: Path, tiny_models: tuple[Path, ...]) -> None:
    store = ModelStore(bentoml_home)
    store.publish("driftloop-x", "v1", {"model": tiny_models[0]}, {}, {})
    with pytest.raises(StoreError, match="already in the store"):
        store.publish("driftloop-x", "v1", {"model": tiny_models[1]}, {}, {})
    with pytest.raises(StoreError, match="does not exist"):
        store.publish("driftloop-x", "v2", {"model": bentoml_home / "missing"}, {}, {})
    assert store.latest_version("driftloop-x") == "v1"


@pytest.mark.slow
def test_a_reader_process_never_fails_while_another_publishes(
    bentoml_home: Path, tiny_models: tuple[Path, ...], tmp_path: Path
) -> None:
    done = tmp_path / "publisher-done"
    worker = [sys.executable, "-m", "tests.registry.store_worker"]
    reader = subprocess.Popen([*worker, "read", str(bentoml_home), "driftloop-race", str(done)],
                              cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        published = subprocess.run(
            [*worker, "publish", str(bentoml_home), "driftloop-race", "25", str(tiny_models[0])],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
    finally:
        done.touch()
        out, _ = reader.communicate(timeout=60)
    assert json.loads(published.stdout.strip().splitlines()[-1]) == {"published": 25}
    result = json.loads(out.strip().splitlines()[-1])
    assert result["error_count"] == 0, result["errors"]
    assert result["reads"] > 25
    assert result["versions_seen"] > 1
