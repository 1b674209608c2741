"""The generative model as the service runs it: the quantized export (`trainer.causal_export`) in ONNX Runtime when
INT8 serving is on and the candidate has one, else the merged causal LM (the adapter folded into the base) in fp32
with transformers; either answers prompts as the trainer's evaluation does.

Importing this module does not import torch: the service imports it whatever kind of model production is.

Measured on SmolLM2-135M-Instruct, 2 shared cores, one prompt answered with 32 new tokens (bench/generate_serving.py):
fp32 takes 1.9-2.0 s at p99, the quantized export 0.32-0.38 s. torch's own dynamic INT8 (fbgemm, activations
quantized per tensor) took 0.93-0.99 s with the MLP's output projection kept in fp32, and torch.compile did not pay
(a graph break at every quantized Linear, 40 s of compiling per new prompt length): the Python of 30 decoder layers
costs about 10 ms a token, which ONNX Runtime does not pay.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from trainer.causal_onnx import OnnxGenerator, load_onnx_generator
from trainer.decoding import BATCH_SIZE, REPETITION_PENALTY
from trainer.errors import ModelLoadError
from trainer.model_info import DECODER_ONNX

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TorchGenerator:
    """A merged causal LM loaded for answering in fp32; build it once with `load_generator` and reuse it."""

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


Generator = TorchGenerator | OnnxGenerator


def load_generator(model_dir: Path, int8_dir: Path | None, int8: bool, threads: int) -> Generator:
    """The causal LM a service serves on `threads` CPU threads: with `int8`, the quantized export (`int8_dir`), else,
    or when there is none, the merged model in `model_dir` in fp32."""
    if int8 and int8_dir is not None and (int8_dir / DECODER_ONNX).is_file():
        try:
            generator = load_onnx_generator(int8_dir, threads)
        except ModelLoadError as exc:
            log.warning("%s: serving it in fp32", exc)
        else:
            log.info("answering with the quantized export %s in ONNX Runtime, %d thread(s)", int8_dir, threads)
            return generator
    elif int8:
        log.warning("%s has no quantized export (trainer.export_int8 was off when it was trained): serving it in fp32",
                    model_dir)  # fmt: skip
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("answering with %s in fp32, %d thread(s)", model_dir, threads)
    torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.train(False)
    return TorchGenerator(model, tokenizer)
