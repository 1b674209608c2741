"""What a model directory (merged, adapter or INT8) was trained with, its `driftloop.json`, and whether it is a
causal LM; imports no torch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from trainer.errors import ModelLoadError

LABELS_FILE = "driftloop.json"
INT8_WEIGHTS = "model.int8.onnx"  # in an INT8 export, beside the tokenizer and LABELS_FILE
DECODER_ONNX = "decoder.onnx"  # in a causal LM's quantized export (trainer.causal_export), beside its tokenizer


@dataclass(frozen=True)
class ModelInfo:
    labels: tuple[str, ...]
    max_length: int
    stride: int
    temperature: float  # divides the logits before the softmax (trainer.calibration); 1.0 for older models


def read_info(model_dir: Path) -> ModelInfo:
    """The labels (in head order) and the window shape of a model directory."""
    path = model_dir / LABELS_FILE
    if not path.is_file():
        raise ModelLoadError(f"{model_dir} is not a driftloop model directory (no {LABELS_FILE})")
    info = json.loads(path.read_text())
    return ModelInfo(
        tuple(info["labels"]), int(info["max_length"]), int(info["stride"]), float(info.get("temperature", 1.0))
    )


def is_causal_lm(model_dir: Path) -> bool:
    """True when the directory holds a causal LM (its `config.json` names a `...ForCausalLM` architecture): the
    service then serves it with /generate, not /predict. A directory without `config.json` is no causal LM."""
    path = model_dir / "config.json"
    if not path.is_file():
        return False
    architectures = json.loads(path.read_text()).get("architectures") or []
    return any(str(name).endswith("ForCausalLM") for name in architectures)
