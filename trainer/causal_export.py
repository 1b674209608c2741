"""The service's quantized copy of a merged causal LM: one decoding step as ONNX, its weights quantized by ONNX
Runtime, served by `trainer.causal_onnx` without torch.

The step takes the new tokens, the attention mask over every position so far, the new tokens' positions and each
layer's key and value cache, and returns the last position's logits and the grown caches. The prompt is one step with
empty caches, each new token one more.

Weights: every Linear becomes a MatMulNBits of 4-bit blocks of 32 with a scale each (symmetric), computed with 8-bit
activations quantized per block (accuracy level 4), but for two kinds kept at 8 bits: the MLP's output projection,
whose inputs carry outliers up to 250 times their RMS, and the output head, the one matrix every token's choice
comes from. Measured on SmolLM2-135M-Instruct against its fp32 answers (bench/generate_serving.py): with both at 4
bits the perplexity of reference glosses was x1.36; with the projection at 8 bits, x1.05 but chrF -2.1 points; with
the head at 8 bits too, within noise of fp32 and chrF -0.3 to -0.4.

The TorchScript exporter, not the torch.export one: for this decoder and its 60 cache tensors the dynamo exporter
took 90 s of CPU, TorchScript 9 s, for graphs whose answers were identical to transformers' on 60 prompts.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import onnx
import torch
from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer
from transformers import AutoModelForCausalLM, DynamicCache, PreTrainedModel

from trainer.model_info import DECODER_ONNX

# The quantizer logs two lines per weight at INFO (and configures the root logger when it is imported first).
logging.getLogger(MatMulNBitsQuantizer.__module__).setLevel(logging.WARNING)
BLOCK_SIZE = 32
ACCURACY_LEVEL = 4  # activations quantized to int8 per block inside each MatMulNBits


class DecodingStep(torch.nn.Module):
    """A causal LM as one step of cached decoding, with plain tensors in and out (what an exporter can trace)."""

    def __init__(self, model: PreTrainedModel) -> None:
        super().__init__()
        self.model = model
        self.layers = int(model.config.num_hidden_layers)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, position_ids: torch.Tensor, *past: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        cache = DynamicCache()
        for layer in range(self.layers):
            cache.update(past[2 * layer], past[2 * layer + 1], layer)
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                         past_key_values=cache, use_cache=True, logits_to_keep=1)  # fmt: skip
        grown = [tensor for layer in out.past_key_values.layers for tensor in (layer.keys, layer.values)]
        return (out.logits[:, -1, :], *grown)


def cache_names(layers: int, prefix: str) -> list[str]:
    """The graph's names of every layer's key and value cache, in order: `past.*` in, `present.*` out."""
    return [f"{prefix}.{layer}.{part}" for layer in range(layers) for part in ("key", "value")]


def export_decoder(model_dir: Path, dest: Path, quantize: bool = True) -> Path:
    """Write the decoding step of the merged causal LM in `model_dir` to `dest` with its tokenizer and configs; its
    weights quantized as the module says, or left in fp32 without `quantize`."""
    dest.mkdir(parents=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train(False)
    head: torch.nn.Module = model.get_output_embeddings()  # type: ignore[no-untyped-call]
    embedding = model.get_input_embeddings().weight
    assert isinstance(embedding, torch.Tensor)
    if head.weight is embedding:  # tied: the head would reach the graph as a transpose, which the quantizer skips
        head.weight = torch.nn.Parameter(embedding.detach().clone())
    config = model.config
    layers = config.num_hidden_layers
    kv_heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    batch, new, cached = 2, 3, 4  # example sizes; every one is dynamic in the graph
    past = [torch.zeros(batch, kv_heads, cached, head_dim) for _ in range(2 * layers)]
    example = (torch.ones(batch, new, dtype=torch.long), torch.ones(batch, cached + new, dtype=torch.long),
               torch.arange(cached, cached + new).expand(batch, new).contiguous(), *past)  # fmt: skip
    inputs = ["input_ids", "attention_mask", "position_ids", *cache_names(layers, "past")]
    outputs = ["logits", *cache_names(layers, "present")]
    axes = {"input_ids": {0: "batch", 1: "new"}, "attention_mask": {0: "batch", 1: "total"},
            "position_ids": {0: "batch", 1: "new"}, "logits": {0: "batch"}}  # fmt: skip
    axes |= {name: {0: "batch", 2: "cached"} for name in inputs[3:]}
    axes |= {name: {0: "batch", 2: "total"} for name in outputs[1:]}
    with tempfile.TemporaryDirectory() as work:
        fp32 = Path(work) / "decoder.fp32.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracer warnings (see the module)
            torch.onnx.export(DecodingStep(model), example, str(fp32), input_names=inputs, output_names=outputs,
                              dynamic_axes=axes, dynamo=False)  # fmt: skip
        graph = onnx.load(str(fp32))
        if quantize:
            graph = quantized(graph, config.vocab_size, getattr(config, "intermediate_size", None))
        onnx.save_model(graph, str(dest / DECODER_ONNX), save_as_external_data=True,
                        location=f"{DECODER_ONNX}.data")  # fmt: skip
    for item in model_dir.iterdir():
        if item.is_file() and not item.name.endswith(".safetensors"):
            shutil.copy2(item, dest / item.name)
    return dest


def quantized(graph: onnx.ModelProto, head_rows: int, projection_inputs: int | None) -> onnx.ModelProto:
    """`graph` with its Linear layers in MatMulNBits: 8 bits for the MLP's output projections (`projection_inputs`
    rows) and the output head (`head_rows` columns), 4 bits for the rest."""
    shapes = {tensor.name: tuple(tensor.dims) for tensor in graph.graph.initializer}
    eight_bit = [
        node.name
        for node in graph.graph.node
        if node.op_type == "MatMul" and len(shape := shapes.get(node.input[1], ())) == 2
        and (shape[0] == projection_inputs or shape[1] == head_rows)
    ]  # fmt: skip
    four = MatMulNBitsQuantizer(graph, bits=4, block_size=BLOCK_SIZE, is_symmetric=True,
                                accuracy_level=ACCURACY_LEVEL, nodes_to_exclude=eight_bit)  # fmt: skip
    four.process()
    eight = MatMulNBitsQuantizer(four.model.model, bits=8, block_size=BLOCK_SIZE, is_symmetric=True,
                                 accuracy_level=ACCURACY_LEVEL, nodes_to_include=eight_bit)  # fmt: skip
    eight.process()
    result: onnx.ModelProto = eight.model.model
    return result
