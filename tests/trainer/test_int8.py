"""The INT8 export served by ONNX Runtime: the windows and, closely, the probabilities of the fp32 model, no torch."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.tiny_bert import save_tiny_bert
from trainer.int8 import load_int8
from trainer.predict import Classifier, load_classifier
from trainer.quantize import export_int8
from trainer.served import load_served
from trainer.windows import make_windows

WORDS = [f"w{i}" for i in range(40)]
TEXTS = ["w1 w2 w3", " ".join(WORDS[(i * 7) % 40] for i in range(100)), "w5 unknown w9", "w3 " * 20]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("int8")
    model = save_tiny_bert(folder / "model", WORDS, seed=1, labels=("neg", "pos"), max_positions=64)
    (model / "driftloop.json").write_text(json.dumps({"labels": ["neg", "pos"], "max_length": 32, "stride": 8}))
    return model, export_int8(model, folder / "int8")


def test_int8_predicts_the_windows_of_the_fp32_model_closely(exported: tuple[Path, Path]) -> None:
    model_dir, int8_dir = exported
    fp32, int8 = load_classifier(model_dir, batch_size=3), load_int8(int8_dir, batch_size=3, threads=1)
    windows = make_windows(fp32.tokenizer, TEXTS, fp32.max_length, fp32.stride)
    encodings = int8.tokenizer.encode_batch(TEXTS)
    assert [tuple(w.ids) for e in encodings for w in (e, *e.overflowing)] == list(windows.input_ids)
    assert len(windows.input_ids) > len(TEXTS)  # the long text has windows
    difference = np.abs(np.array(int8.probabilities(TEXTS)) - np.array(fp32.probabilities(TEXTS)))
    assert 0 < difference.max() < 0.05, "INT8 weights give close, not identical, probabilities"


def test_serving_int8_does_not_import_torch(exported: tuple[Path, Path]) -> None:
    code = ("import sys; from pathlib import Path; from trainer.served import load_served, predict; "
            "model = load_served(Path(sys.argv[1]), Path(sys.argv[2]), True, 8, 1); predict(model, ['w1 w2']); "
            "print(type(model).__name__, 'torch' in sys.modules)")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code, *map(str, exported)], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["Int8Classifier", "False"]


def test_a_model_without_an_onnx_int8_export_is_served_in_fp32(
    exported: tuple[Path, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "model.int8.safetensors").write_bytes(b"")  # an export of the torch INT8 path this replaced
    for int8_dir in (None, tmp_path):
        with caplog.at_level(logging.WARNING, logger="trainer.served"):
            model = load_served(exported[0], int8_dir, int8=True, batch_size=8, threads=1)
        assert isinstance(model, Classifier)
    assert caplog.text.count("has no ONNX INT8 export") == 2
