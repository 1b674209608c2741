"""LoRA on a causal LM, for the generation task: the same loop as the classifier (`trainer.fit.train`: AdamW,
warmup, gradient accumulation, weight decay toward the parent, early stopping), with the loss on the response
tokens only and validation perplexity picking the best epoch.

Label smoothing, which the classifier uses, is left out here: spread over a 49k-token vocabulary it raises the
loss floor of every token and flattens greedy decoding, for no regularising benefit a LoRA rank does not give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from trainer.causal_examples import Example, perplexity, response_nll
from trainer.fit import Report, ShouldStop, train
from trainer.results import FitStats
from trainer.settings import TrainerSettings


def causal_model(
    base: Path, parent: Path | None, settings: TrainerSettings
) -> tuple[PeftModel, PreTrainedTokenizerBase]:
    """The base model with a fresh LoRA adapter, or with `parent`'s adapter to continue; and its tokenizer."""
    torch.manual_seed(settings.seed)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    if parent is not None:
        return PeftModel.from_pretrained(model, parent, is_trainable=True), tokenizer
    config = LoraConfig(task_type=TaskType.CAUSAL_LM, r=settings.lora_r, lora_alpha=settings.lora_alpha,
                        lora_dropout=settings.lora_dropout, target_modules=list(settings.target_modules()))  # fmt: skip
    return get_peft_model(model, config), tokenizer


@dataclass
class CausalObjective:
    """Each example's mean negative log-likelihood of its response tokens, times its weight; validation
    perplexity."""

    model: torch.nn.Module
    train: Sequence[Example]
    weights: Sequence[float]
    validation: Sequence[Example]
    pad_id: int
    metric: str = "perplexity"
    lower_is_better: bool = True

    def lengths(self) -> Sequence[int]:
        return [len(example.input_ids) for example in self.train]

    def loss(self, batch: Sequence[int], denominator: int) -> torch.Tensor:
        nll, tokens = response_nll(self.model, [self.train[i] for i in batch], self.pad_id)
        weight = torch.tensor([self.weights[i] for i in batch], device=nll.device)
        return ((nll / tokens.clamp(min=1)) * weight).sum() / denominator

    def validate(self) -> float:
        self.model.train(False)
        value = perplexity(self.model, self.validation, self.pad_id)
        self.model.train(True)
        return value


def fit_causal(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    train_examples: Sequence[Example],
    weights: Sequence[float],
    validation: Sequence[Example],
    settings: TrainerSettings,
    report: Report,
    should_stop: ShouldStop,
    continued: bool = False,
) -> FitStats:
    """Train in place; at the end the model holds the weights of the epoch with the lowest validation perplexity."""
    pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    objective = CausalObjective(model, train_examples, weights, validation, pad_id)
    return train(model, objective, settings, report, should_stop, continued)
