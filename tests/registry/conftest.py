"""Tiny candidate models saved to temp folders, a registry over a temp DuckDB file and BentoML home, evaluations."""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from registry.candidates import CandidateFiles, Lineage  # noqa: E402
from registry.evaluation import Evaluation, HoldoutPredictions  # noqa: E402
from registry.registry import Registry  # noqa: E402
from registry.settings import RegistrySettings  # noqa: E402
from tests.tiny_bert import save_tiny_bert  # noqa: E402

LABELS = ("neg", "pos")
WORDS = [f"w{i}" for i in range(40)]


def build_tiny_model(folder: Path, seed: int) -> Path:
    """A randomly initialised 2-layer BERT classifier with its tokenizer, laid out like a trainer candidate."""
    save_tiny_bert(folder, WORDS, seed=seed, labels=LABELS, max_positions=64)
    (folder / "driftloop.json").write_text(json.dumps({"labels": list(LABELS), "max_length": 32, "stride": 8}))
    return folder


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("tiny-candidates")
    return tuple(build_tiny_model(root / f"model-{seed}", seed) for seed in range(3))  # type: ignore[return-value]


@pytest.fixture(autouse=True)
def bentoml_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home" / "bentoml"
    monkeypatch.setenv("BENTOML_HOME", str(home))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    return home


@pytest.fixture
def settings() -> RegistrySettings:
    return RegistrySettings(task="test", poll_interval_s=0.2, gate_bootstrap_samples=200)


@pytest.fixture
def registry(tmp_path: Path, settings: RegistrySettings, bentoml_home: Path) -> Iterator[Registry]:
    (tmp_path / "home").mkdir(exist_ok=True)
    con = duckdb.connect(str(tmp_path / "home" / "driftloop.duckdb"))
    try:
        yield Registry(con, settings, bentoml_home)
    finally:
        con.close()


def holdout(rows: int, accuracy: float, seed: int, labels: tuple[str, ...] = LABELS) -> HoldoutPredictions:
    """`rows` holdout rows (fixed for a seed) and predictions of which a share `accuracy` is right."""
    truth_rng = random.Random(f"truth-{seed}")
    true = tuple(labels[truth_rng.randrange(len(labels))] for _ in range(rows))
    rng = random.Random(f"pred-{seed}-{accuracy}")
    right = set(rng.sample(range(rows), round(rows * accuracy)))
    wrong = {label: next(other for other in labels if other != label) for label in labels}
    return HoldoutPredictions(true, tuple(t if i in right else wrong[t] for i, t in enumerate(true)))


def evaluation(
    accuracy: dict[int, float], rows: int = 200, latency_ms: float = 20.0, memory_mb: float = 500.0
) -> Evaluation:
    return Evaluation(
        episodes={e: holdout(rows, a, seed=e) for e, a in accuracy.items()},
        latency_ms_p99=latency_ms,
        peak_memory_mb=memory_mb,
    )


def lineage_for(run: str) -> Lineage:
    return Lineage(
        kafka_ranges=({"topic": "feedback", "partition": 0, "first_offset": 0, "last_offset": 99, "rows": 100},),
        snapshot={"first_row_id": 1, "last_row_id": 100, "rows": 100},
        drift_event={"id": 1, "signal": "error"},
        training_run={"run": run, "settings": {"method": "lora", "lora_r": 8}},
        report={"path": f"runs/{run}/candidate.json"},
    )


def files(model_dir: Path) -> CandidateFiles:
    return CandidateFiles(model_dir=model_dir)
