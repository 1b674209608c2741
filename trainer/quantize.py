"""INT8 export: the merged model as ONNX, quantized by ONNX Runtime's dynamic quantization (int8 weights with a
scale per output channel, activations quantized at run time), served by `trainer.int8` without torch."""

from __future__ import annotations

import shutil
from pathlib import Path

import torch
from onnxruntime.quantization import QuantType, quantize_dynamic
from transformers import AutoModelForSequenceClassification

from trainer.model_info import INT8_WEIGHTS


def export_int8(model_dir: Path, dest: Path) -> Path:
    """Write an INT8 copy of a merged model directory (config, tokenizer, labels, the quantized ONNX model)."""
    dest.mkdir(parents=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    # Two tensors, not one: the exporter would take a tensor passed twice for one input.
    example = {name: torch.ones((2, 16), dtype=torch.long) for name in ("input_ids", "attention_mask")}
    dynamic = {0: torch.export.Dim.DYNAMIC, 1: torch.export.Dim.DYNAMIC}
    program = torch.onnx.export(model, (), kwargs=example, dynamic_shapes=dict.fromkeys(example, dynamic),
                                dynamo=True, verbose=False, output_names=["logits"])  # fmt: skip
    assert program is not None  # the dynamo exporter always returns its program
    fp32 = dest / "model.fp32.onnx"
    program.save(str(fp32))
    quantize_dynamic(fp32, dest / INT8_WEIGHTS, per_channel=True, weight_type=QuantType.QInt8)
    fp32.unlink()
    for item in model_dir.iterdir():
        if item.is_file() and not item.name.endswith(".safetensors"):
            shutil.copy2(item, dest / item.name)
    return dest


def weights_bytes(model_dir: Path) -> int:
    return sum(path.stat().st_size for path in model_dir.iterdir() if path.suffix in (".safetensors", ".onnx"))
