"""The quantized export of a causal LM (`trainer.causal_export`) answering prompts with ONNX Runtime, as
`trainer.causal_eval.generate` answers them with transformers: the chat template, greedy or sampled decoding (top-k
50), the repetition penalty over the prompt and the answer so far, and the end of turn held back until
`min_new_tokens`. The graph reads a batch's prompts right-padded, with each row's length; the penalty sees them
left-padded, as transformers' batches are, so a padded row's end of turn is penalised as there. Importing this module
does not import torch.

Measured on SmolLM2-135M-Instruct, one prompt answered with 32 new tokens (bench/generate_serving.py, 2026-12-01): p99
377 ms on one thread and 320 ms on two, against fp32's 1.98 and 1.97 s; unquantized, the export answered 60 gloss
prompts in batches of 16 word for word as transformers did.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnxruntime

from trainer.decoding import BATCH_SIZE, REPETITION_PENALTY, chat_prompt
from trainer.errors import ModelLoadError
from trainer.int8 import cpu_session
from trainer.model_info import DECODER_ONNX

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

TOP_K = 50  # transformers' default when sampling


@dataclass(frozen=True)
class OnnxGenerator:
    """A quantized decoder loaded for answering; build it once with `load_onnx_generator` and reuse it."""

    session: onnxruntime.InferenceSession
    tokenizer: PreTrainedTokenizerBase
    cache_shape: tuple[int, int]  # key/value heads and head size of every layer's cache
    past_names: tuple[str, ...]  # the cache inputs, in the order of the grown caches among the outputs
    batch_size: int = BATCH_SIZE
    random: np.random.Generator = field(default_factory=np.random.default_rng)

    def generate(
        self,
        prompts: Sequence[str],
        max_new_tokens: int,
        temperature: float = 0.0,
        repetition_penalty: float = REPETITION_PENALTY,
        min_new_tokens: int = 0,
    ) -> list[str]:
        """One answer per prompt, as `trainer.causal_served.TorchGenerator.generate` gives."""
        answers: list[str] = []
        for start in range(0, len(prompts), self.batch_size):
            texts = [chat_prompt(self.tokenizer, prompt) for prompt in prompts[start : start + self.batch_size]]
            encoded = self.tokenizer(texts, add_special_tokens=False)["input_ids"]
            new = self._decode(encoded, max_new_tokens, temperature, repetition_penalty, min_new_tokens)
            answers.extend(text.strip() for text in self.tokenizer.batch_decode(new, skip_special_tokens=True))
        return answers

    def _decode(
        self, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float, penalty: float,
        min_new_tokens: int,
    ) -> np.ndarray:  # fmt: skip
        """The new tokens of a batch of prompts, a row of padding after its end of turn. The graph reads the prompts
        right-padded; the penalty sees them left-padded, as transformers' batches are."""
        lengths = np.array([len(prompt) for prompt in prompts])
        rows, width = len(prompts), int(lengths.max())
        end, pad = int(self.tokenizer.eos_token_id), int(self.tokenizer.pad_token_id)
        step, seen = np.full((rows, width), pad, dtype=np.int64), np.full((rows, width), pad, dtype=np.int64)
        for row, prompt in enumerate(prompts):
            step[row, : len(prompt)] = seen[row, width - len(prompt) :] = prompt
        cache, finished, new = self.empty_cache(rows), np.zeros(rows, dtype=bool), []
        for produced in range(max_new_tokens):
            logits, cache = self.step(step, lengths, cache)
            logits = penalized(logits, seen, penalty)
            if produced < min_new_tokens:
                logits[:, end] = -np.inf
            chosen = np.where(finished, pad, self._choose(logits, temperature))
            finished |= chosen == end
            new.append(chosen)
            step = chosen[:, None].astype(np.int64)
            seen = np.concatenate([seen, step], axis=1)
            lengths = lengths + 1
            if finished.all():
                break
        return np.stack(new, axis=1) if new else np.zeros((rows, 0), dtype=np.int64)

    def empty_cache(self, rows: int) -> dict[str, np.ndarray]:
        heads, size = self.cache_shape
        return {name: np.zeros((rows, heads, 0, size), dtype=np.float32) for name in self.past_names}

    def step(
        self, ids: np.ndarray, lengths: np.ndarray, cache: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Each row's logits after its last new token, for `ids` after the cached ones, each row `lengths` tokens long
        with them; and the cache grown by them. `ids` are the prompts, right-padded, when the cache is empty, else one
        token a row."""
        prompts = cache[self.past_names[0]].shape[2] == 0
        feed = {
            "input_ids": ids,
            "seqlens_k": (lengths - 1).astype(np.int32),
            "total_sequence_length": np.array(lengths.max(), dtype=np.int32),
            "logits_at": (lengths - 1 if prompts else np.zeros_like(lengths)).astype(np.int64),
        }
        result = self.session.run(None, {**cache, **feed})
        return result[0], dict(zip(self.past_names, result[1:], strict=True))

    def reference_loss(self, prompt_ids: Sequence[int], answer_ids: Sequence[int]) -> float:
        """The summed negative log-likelihood of `answer_ids` after `prompt_ids`, one token a step as answers are
        decoded (what quantization costs in perplexity, measured where the service computes)."""
        ids = np.array([prompt_ids], dtype=np.int64)
        cache, total = self.empty_cache(1), 0.0
        for token in answer_ids:
            lengths = np.array([cache[self.past_names[0]].shape[2] + ids.shape[1]])
            logits, cache = self.step(ids, lengths, cache)
            row = logits[0].astype(np.float64)
            total += float(row.max() + np.log(np.exp(row - row.max()).sum()) - row[token])
            ids = np.array([[token]], dtype=np.int64)
        return total

    def _choose(self, logits: np.ndarray, temperature: float) -> np.ndarray:
        if temperature <= 0:
            return np.asarray(logits.argmax(axis=1))
        scaled = logits.astype(np.float64) / temperature
        kth = np.partition(scaled, -TOP_K, axis=1)[:, -TOP_K][:, None] if scaled.shape[1] > TOP_K else -np.inf
        scaled = np.where(scaled < kth, -np.inf, scaled)
        weights = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        return np.array([self.random.choice(len(row), p=row) for row in weights])


def penalized(logits: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """transformers' repetition penalty: the logit of every token already in the row divided by `penalty` when
    positive, multiplied when negative (padding included, as transformers does)."""
    picked = np.take_along_axis(logits, seen, axis=1)
    np.put_along_axis(logits, seen, np.where(picked < 0, picked * penalty, picked / penalty), axis=1)
    return logits


def load_onnx_generator(export_dir: Path, threads: int) -> OnnxGenerator:
    """Load a causal LM's quantized export for answering on `threads` CPU threads."""
    from transformers import AutoTokenizer

    if not (export_dir / DECODER_ONNX).is_file():
        raise ModelLoadError(f"{export_dir} is not a causal LM's quantized export (no {DECODER_ONNX})")
    session = cpu_session(export_dir / DECODER_ONNX, threads)
    if "seqlens_k" not in {i.name for i in session.get_inputs()}:
        raise ModelLoadError(f"{export_dir} was exported by an earlier driftloop, whose decoding step this one cannot "
                             "run; the next candidate brings a new export")  # fmt: skip
    past_names = tuple(output.name.replace("present.", "past.", 1) for output in session.get_outputs()[1:])
    _, heads, _, size = next(i for i in session.get_inputs() if i.name == past_names[0]).shape
    return OnnxGenerator(session, AutoTokenizer.from_pretrained(export_dir), (int(heads), int(size)), past_names)
