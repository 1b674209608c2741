"""The service's quantized copy of a merged causal LM: one decoding step as an ONNX graph built from the model's
weights with ONNX Runtime's fused operators, its projections quantized to 8 bits, served by `trainer.causal_onnx`
without torch.

The step takes the new tokens of each row (right-padded), each row's count of tokens after the step less one
(`seqlens_k`), the batch's largest count, where each row's last new token is, and every layer's key and value cache;
it returns those tokens' logits and the grown caches. The prompt is one step with empty caches, each new token one
more. A layer is RMS norm fused with the residual add, one projection for query, key and value, GroupQueryAttention
(rotary positions and the cache inside, positions counted from `seqlens_k`), the output projection, and the MLP as
one gate-and-up projection, SiLU and the down projection: 11 operators, where the TorchScript export of the same
model (which this replaced) ran about 100, most of them shape arithmetic. On SmolLM2-135M-Instruct, one prompt and 32
new tokens on one thread: p50 350 ms against 500 ms with the same 4-bit weights.

Weights: every projection a MatMulNBits of 8-bit blocks of 32 with a scale each (symmetric), computed with 8-bit
activations quantized per block (accuracy level 4). Measured on a fine-tune from the generation demo against its fp32
answers on 60 glosses: perplexity x1.01 and chrF +0.5 points at 8 bits, 386 ms at p50 on one thread; 4 bits (but 8
for the MLP's output projection and the head) cost x1.34 and -0.8 points for 357 ms.

Llama-shaped decoders only (Llama, SmolLM, Qwen2 without sliding windows: RMS norms, rotary attention with grouped
key/value heads, a SiLU-gated MLP); for any other `UnsupportedDecoder` says why and the service answers in fp32.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
from transformers import AutoModelForCausalLM, PreTrainedModel

from trainer.errors import TrainerError
from trainer.model_info import DECODER_ONNX

# The quantizer logs two lines per weight at INFO (and configures the root logger when it is imported first).
logging.getLogger(MatMulNBitsQuantizer.__module__).setLevel(logging.WARNING)
BITS, BLOCK_SIZE = 8, 32
ACCURACY_LEVEL = 4  # activations quantized to int8 per block inside each MatMulNBits
LLAMA_SHAPED = ("llama", "qwen2")
OPSETS = [helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)]


class UnsupportedDecoder(TrainerError):
    """The model is not a decoder this export can build."""


def export_decoder(model_dir: Path, dest: Path, quantize: bool = True) -> Path:
    """Write the decoding step of the merged causal LM in `model_dir` to `dest` with its tokenizer and configs; its
    weights quantized as the module says, or left in fp32 without `quantize`."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train(False)
    with torch.no_grad():
        graph = decoder_graph(model)
    if quantize:
        graph = quantized(graph)
    dest.mkdir(parents=True)
    onnx.save_model(graph, str(dest / DECODER_ONNX), save_as_external_data=True, location=f"{DECODER_ONNX}.data")
    for item in model_dir.iterdir():
        if item.is_file() and not item.name.endswith(".safetensors"):
            shutil.copy2(item, dest / item.name)
    return dest


def supported(model: PreTrainedModel) -> None:
    """Raise `UnsupportedDecoder` naming what this export cannot build in `model`."""
    config = model.config
    if config.model_type not in LLAMA_SHAPED:
        raise UnsupportedDecoder(f"{config.model_type} models are not exported (only {', '.join(LLAMA_SHAPED)})")
    if getattr(config, "use_sliding_window", False) or getattr(config, "hidden_act", "silu") != "silu":
        raise UnsupportedDecoder("a sliding attention window or an activation other than SiLU is not exported")


def rotary_tables(model: PreTrainedModel, positions: int) -> tuple[np.ndarray, np.ndarray]:
    """The rotary embedding's cos and sin for `positions` positions, half a head wide (as transformers computes
    them, scaling included: its halves repeat); `UnsupportedDecoder` for rotary embeddings GroupQueryAttention does
    not compute."""
    ids = torch.arange(positions)[None]
    cos, sin = model.model.rotary_emb(torch.zeros(1, dtype=torch.float32), ids)
    half = cos.shape[-1] // 2
    if cos.shape[-1] != model.model.layers[0].self_attn.head_dim:
        raise UnsupportedDecoder("partial rotary embeddings are not exported")
    if not torch.equal(cos[0, :, :half], cos[0, :, half:]):
        raise UnsupportedDecoder("interleaved rotary embeddings are not exported")
    return cos[0, :, :half].numpy(), sin[0, :, :half].numpy()


class GraphBuilder:
    """Nodes and weights of an ONNX graph."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.weights: list[onnx.TensorProto] = []

    def weight(self, name: str, values: np.ndarray) -> str:
        self.weights.append(numpy_helper.from_array(np.ascontiguousarray(values), name))
        return name

    def node(self, op: str, inputs: Sequence[str], name: str, outputs: Sequence[str] = (), **attributes: Any
             ) -> list[str]:  # fmt: skip
        """Add `op` named `name`; its outputs are `outputs` ("" for one left out), or the one output `name`."""
        names = list(outputs) or [name]
        domain = "com.microsoft" if op in CONTRIB_OPS else ""
        self.nodes.append(helper.make_node(op, list(inputs), names, name, domain=domain, **attributes))
        return names

    def linear(self, x: str, name: str, modules: Sequence[torch.nn.Linear], output: str | None = None) -> str:
        """`x` through the Linear layers `modules` side by side, as one MatMul named `name` (and an Add, when any
        has a bias), into `output` when given."""
        weight = torch.cat([module.weight for module in modules]).T.numpy()
        biased = any(module.bias is not None for module in modules)
        product = name if biased or output is None else output
        self.node("MatMul", [x, self.weight(f"{name}.weight", weight)], name, outputs=[product])
        if not biased:
            return product
        bias = torch.cat([torch.zeros(m.out_features) if m.bias is None else m.bias for m in modules]).numpy()
        return self.node("Add", [product, self.weight(f"{name}.bias", bias)], f"{name}.biased",
                         outputs=[output or f"{name}.biased"])[0]  # fmt: skip


# ONNX Runtime's own operators (its SimplifiedLayerNormalization is in the ONNX domain)
CONTRIB_OPS = {"SkipSimplifiedLayerNormalization", "GroupQueryAttention"}


def decoder_graph(model: PreTrainedModel) -> onnx.ModelProto:
    """The decoding step of `model` (see the module) with fp32 weights."""
    supported(model)
    config, decoder = model.config, model.model
    attention = decoder.layers[0].self_attn
    heads, kv_heads, head_dim = config.num_attention_heads, config.num_key_value_heads, attention.head_dim
    graph = GraphBuilder()
    cos, sin = rotary_tables(model, config.max_position_embeddings)
    tables = [graph.weight("rotary.cos", cos), graph.weight("rotary.sin", sin)]
    embeddings = graph.weight("embed.weight", decoder.embed_tokens.weight.numpy())
    hidden = graph.node("Gather", [embeddings, "input_ids"], "embed")[0]
    residual, branch = hidden, None
    for i, layer in enumerate(decoder.layers):
        normed, residual = residual_norm(graph, f"layers.{i}.input_norm", branch, residual, layer.input_layernorm)
        attn = layer.self_attn
        qkv = graph.linear(normed, f"layers.{i}.qkv", [attn.q_proj, attn.k_proj, attn.v_proj])
        attended = graph.node(
            "GroupQueryAttention",
            [qkv, "", "", f"past.{i}.key", f"past.{i}.value", "seqlens_k", "total_sequence_length", *tables],
            f"layers.{i}.attention", outputs=[f"layers.{i}.attention", f"present.{i}.key", f"present.{i}.value"],
            num_heads=heads, kv_num_heads=kv_heads, scale=float(attn.scaling), do_rotary=1,
        )  # fmt: skip
        branch = graph.linear(attended[0], f"layers.{i}.o_proj", [attn.o_proj])
        normed, residual = residual_norm(graph, f"layers.{i}.post_norm", branch, residual,
                                         layer.post_attention_layernorm)  # fmt: skip
        branch = mlp(graph, f"layers.{i}.mlp", normed, layer.mlp)
    normed, _ = residual_norm(graph, "final_norm", branch, residual, decoder.norm)
    at = graph.node("Unsqueeze", ["logits_at", graph.weight("axis.last", np.array([-1]))], "logits_at.column")[0]
    last = graph.node("GatherND", [normed, at], "last_hidden", batch_dims=1)[0]
    head = model.get_output_embeddings()  # type: ignore[no-untyped-call]
    assert isinstance(head, torch.nn.Linear)
    graph.linear(last, "lm_head", [head], output="logits")
    return helper.make_model(
        helper.make_graph(graph.nodes, "decoding_step", decoder_inputs(config.num_hidden_layers, kv_heads, head_dim),
                          decoder_outputs(config.num_hidden_layers, kv_heads, head_dim, config.vocab_size),
                          graph.weights),
        opset_imports=OPSETS,
    )  # fmt: skip


def residual_norm(graph: GraphBuilder, name: str, branch: str | None, residual: str, norm: Any) -> tuple[str, str]:
    """The RMS norm of `residual` plus `branch` (when there is one) and that sum."""
    weight = graph.weight(f"{name}.weight", norm.weight.numpy())
    epsilon = float(norm.variance_epsilon)
    if branch is None:
        graph.node("SimplifiedLayerNormalization", [residual, weight], name, epsilon=epsilon, axis=-1)
        return name, residual
    summed = f"{name}.residual"
    graph.node("SkipSimplifiedLayerNormalization", [branch, residual, weight], name, outputs=[name, "", "", summed],
               epsilon=epsilon)  # fmt: skip
    return name, summed


def mlp(graph: GraphBuilder, name: str, x: str, module: Any) -> str:
    """SiLU(x Wgate) * (x Wup), through Wdown."""
    width = module.gate_proj.out_features
    both = graph.linear(x, f"{name}.gate_up", [module.gate_proj, module.up_proj])
    sizes = graph.weight(f"{name}.split_sizes", np.array([width, width]))
    gate, up = graph.node("Split", [both, sizes], f"{name}.split", outputs=[f"{name}.gate", f"{name}.up"], axis=-1)
    sigmoid = graph.node("Sigmoid", [gate], f"{name}.sigmoid")[0]
    silu = graph.node("Mul", [gate, sigmoid], f"{name}.silu")[0]
    gated = graph.node("Mul", [silu, up], f"{name}.gated")[0]
    return graph.linear(gated, f"{name}.down_proj", [module.down_proj])


def decoder_inputs(layers: int, kv_heads: int, head_dim: int) -> list[onnx.ValueInfoProto]:
    cache: list[str | int] = ["batch", kv_heads, "cached", head_dim]
    return [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "new"]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["batch"]),
        helper.make_tensor_value_info("total_sequence_length", TensorProto.INT32, []),
        helper.make_tensor_value_info("logits_at", TensorProto.INT64, ["batch"]),
        *[helper.make_tensor_value_info(name, TensorProto.FLOAT, cache) for name in cache_names(layers, "past")],
    ]


def decoder_outputs(layers: int, kv_heads: int, head_dim: int, vocab: int) -> list[onnx.ValueInfoProto]:
    cache: list[str | int] = ["batch", kv_heads, "total", head_dim]
    return [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", vocab]),
        *[helper.make_tensor_value_info(name, TensorProto.FLOAT, cache) for name in cache_names(layers, "present")],
    ]


def cache_names(layers: int, prefix: str) -> list[str]:
    """The graph's names of every layer's key and value cache, in order: `past.*` in, `present.*` out."""
    return [f"{prefix}.{layer}.{part}" for layer in range(layers) for part in ("key", "value")]


def quantized(graph: onnx.ModelProto) -> onnx.ModelProto:
    """`graph` with every projection in MatMulNBits: 8-bit blocks of `BLOCK_SIZE`, 8-bit activations."""
    quantizer = MatMulNBitsQuantizer(graph, bits=BITS, block_size=BLOCK_SIZE, is_symmetric=True,
                                     accuracy_level=ACCURACY_LEVEL)  # fmt: skip
    quantizer.process()
    result: onnx.ModelProto = quantizer.model.model
    return result
