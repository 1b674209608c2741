"""INT8 dynamic quantization: int8 weights with per-row scales; activations quantized per row at run time.

Written with plain torch ops (`torch._int_mm` for the int8 matrix product) because torch.ao.quantization and
quantized tensors are deprecated in torch 2.13. The classification head stays in float32.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoConfig, AutoModelForSequenceClassification

from trainer.model import LABELS_FILE

WEIGHTS = "model.int8.safetensors"
KEEP_FLOAT = ("classifier", "score", "out_proj")


def _quantize_rows(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    scale = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0
    return torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8), scale.float()


class Int8Linear(torch.nn.Module):
    weight_t: torch.Tensor
    scale: torch.Tensor
    bias: torch.Tensor | None

    def __init__(self, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.register_buffer("weight_t", torch.zeros((in_features, out_features), dtype=torch.int8))
        self.register_buffer("scale", torch.ones(out_features))
        self.register_buffer("bias", torch.zeros(out_features) if bias else None)

    @classmethod
    def from_float(cls, linear: torch.nn.Linear) -> Int8Linear:
        module = cls(linear.in_features, linear.out_features, linear.bias is not None)
        weight, scale = _quantize_rows(linear.weight.detach())
        module.weight_t = weight.t().contiguous()
        module.scale = scale
        if linear.bias is not None:
            module.bias = linear.bias.detach().clone()
        return module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1]).float()
        x_scale = flat.abs().amax(dim=1, keepdim=True).clamp(min=1e-8) / 127.0
        quantized = torch.round(flat / x_scale).clamp(-127, 127).to(torch.int8)
        out = torch._int_mm(quantized, self.weight_t).float() * x_scale * self.scale
        if self.bias is not None:
            out = out + self.bias
        return out.reshape(*x.shape[:-1], out.shape[-1]).to(x.dtype)


class Int8Embedding(torch.nn.Module):
    weight_q: torch.Tensor
    scale: torch.Tensor

    def __init__(self, count: int, dim: int, padding_idx: int | None) -> None:
        super().__init__()
        self.padding_idx = padding_idx
        self.register_buffer("weight_q", torch.zeros((count, dim), dtype=torch.int8))
        self.register_buffer("scale", torch.ones(count))

    @classmethod
    def from_float(cls, embedding: torch.nn.Embedding) -> Int8Embedding:
        module = cls(embedding.num_embeddings, embedding.embedding_dim, embedding.padding_idx)
        module.weight_q, module.scale = _quantize_rows(embedding.weight.detach())
        return module

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.weight_q[ids].float() * self.scale[ids].unsqueeze(-1)


def quantize(model: torch.nn.Module) -> torch.nn.Module:
    """Replace every Linear and Embedding (but the head) with its INT8 version, in place."""
    for name, module in list(model.named_modules()):
        if any(part in KEEP_FLOAT for part in name.split(".")):
            continue
        replacement: torch.nn.Module | None = None
        if isinstance(module, torch.nn.Linear):
            replacement = Int8Linear.from_float(module)
        elif isinstance(module, torch.nn.Embedding):
            replacement = Int8Embedding.from_float(module)
        if replacement is not None:
            owner_name, _, attribute = name.rpartition(".")
            setattr(model.get_submodule(owner_name), attribute, replacement)
    return model.eval()


def export_int8(model_dir: Path, dest: Path) -> Path:
    """Write an INT8 copy of a merged model directory (config, tokenizer, labels, int8 weights)."""
    dest.mkdir(parents=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    quantize(model)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(dest / WEIGHTS))
    for item in model_dir.iterdir():
        if item.is_file() and not item.name.endswith(".safetensors"):
            shutil.copy2(item, dest / item.name)
    info = json.loads((dest / LABELS_FILE).read_text())
    (dest / LABELS_FILE).write_text(json.dumps({**info, "int8": True}, indent=1))
    return dest


def load_int8(model_dir: Path) -> torch.nn.Module:
    config = AutoConfig.from_pretrained(model_dir)
    model = quantize(AutoModelForSequenceClassification.from_config(config))  # type: ignore[no-untyped-call]
    model.load_state_dict(load_file(str(model_dir / WEIGHTS)))
    return model


def is_int8(model_dir: Path) -> bool:
    return (model_dir / WEIGHTS).is_file()


def weights_bytes(model_dir: Path) -> int:
    return sum(path.stat().st_size for path in model_dir.glob("*.safetensors"))
