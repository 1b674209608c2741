"""The gate's latency and memory come from a fresh process that runs the model as the service does, not from
the process that trained it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.tiny_bert import save_tiny_bert
from trainer.errors import TrainerError
from trainer.quantize import export_int8
from trainer.serving_cost import ServedAs, measure_serving, peak_memory_mb

WORDS = [f"w{i}" for i in range(40)]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("served") / "model"
    save_tiny_bert(folder, WORDS, seed=1, labels=("neg", "pos"), max_positions=64)
    (folder / "driftloop.json").write_text(json.dumps({"labels": ["neg", "pos"], "max_length": 32, "stride": 8}))
    return folder


@pytest.mark.parametrize("int8", [False, True])
def test_cost_is_measured_in_a_process_of_its_own(tiny_model: Path, int8: bool, tmp_path: Path) -> None:
    held = bytearray(700 * 2**20)  # what a training process still holds: the measure must not see it
    held[:: 2**12] = b"x" * len(held[:: 2**12])
    texts = [" ".join(WORDS[(i + j) % 40] for j in range(30)) for i in range(50)]
    served_as = ServedAs(int8=int8, batch_size=8, max_batch_texts=16, threads=1)

    int8_dir = export_int8(tiny_model, tmp_path / "int8") if int8 else None
    cost = measure_serving(tiny_model, int8_dir, served_as, texts, latency_samples=10)

    assert cost.texts == 50
    assert 0 < cost.latency_ms_p50 <= cost.latency_ms_p99
    assert 50 < cost.peak_memory_mb < peak_memory_mb() - 500
    del held


def test_a_model_that_cannot_load_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(TrainerError, match="measuring .* as served failed .*not a driftloop model directory"):
        measure_serving(tmp_path, None, ServedAs(False, 8, 16, 1), ["a"], latency_samples=1)
