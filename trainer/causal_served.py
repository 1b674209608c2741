"""The generative model as the service runs it: a merged causal LM (the adapter folded into the base) with its
tokenizer, in fp32 or with its Linear layers in dynamic INT8, answering prompts as the trainer's evaluation does.

Importing this module does not import torch: the service imports it whatever kind of model production is.

Measured on SmolLM2-135M-Instruct, 2 shared cores, one prompt answered with 32 new tokens (bench/generate_serving.py):
fp32 takes 1.9 s at p50. Dynamic INT8 (int8 weights, activations quantized per call by fbgemm) on every Linear takes
0.8 s but multiplies the perplexity of reference answers by 4.8: the inputs of the MLP's output projection carry
outliers up to 250 times their RMS (3,000 in layers 11 and 28) that one INT8 scale per tensor flattens. With that
projection kept in fp32, INT8 takes 0.93-0.99 s, perplexity x1.06, chrF -0.9 points. torch.compile (inductor, static
KV cache) did not pay here: graph breaks at every quantized Linear made INT8 slower, and each new prompt length cost
40 s of compiling. torch deprecates `torch.ao.quantization` in favour of torchao (not a dependency here); its
warnings are silenced at the one call.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.decoding import BATCH_SIZE, REPETITION_PENALTY

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

FP32_LINEARS = ("down_proj",)  # Llama's MLP output projection: INT8 activations would flatten its outliers


@dataclass(frozen=True)
class Generator:
    """A causal LM loaded for answering; build it once with `load_generator` and reuse it."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    batch_size: int = BATCH_SIZE

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        temperature: float = 0.0,
        repetition_penalty: float = REPETITION_PENALTY,
        min_new_tokens: int = 0,
    ) -> list[str]:
        """One answer per prompt: greedy at temperature 0 (the answers the gate scored), else sampled (seed torch's
        generator for repeatable samples). `min_new_tokens` holds the end of turn back, so timing can force a
        length."""
        from trainer.causal_eval import generate

        return generate(self.model, self.tokenizer, prompts, max_new_tokens, self.batch_size, repetition_penalty,
                        min_new_tokens, temperature)  # fmt: skip


def load_generator(model_dir: Path, int8: bool, threads: int) -> Generator:
    """The merged causal LM in `model_dir` on `threads` CPU threads; with `int8`, its Linear layers but the MLP's
    output projections in dynamic INT8."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train(False)
    if int8:
        quantize_linears(model)
    return Generator(model, tokenizer)


def quantize_linears(model: torch.nn.Module) -> None:
    """Replace every Linear of `model` but those named in FP32_LINEARS (the output head included) by a dynamic INT8
    one, in place, so the fp32 weights are freed as their INT8 copies are made (a copy would double the peak)."""
    import torch

    quantized = torch.ao.quantization.default_dynamic_qconfig
    names = [name for name, module in model.named_modules()
             if isinstance(module, torch.nn.Linear) and not name.endswith(FP32_LINEARS)]  # fmt: skip
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", "torch.quantize_per_tensor, torch.quantize_per_channel", UserWarning)
        torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
            model, dict.fromkeys(names, quantized), inplace=True
        )
