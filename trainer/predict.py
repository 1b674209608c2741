"""Prediction with a merged candidate model in torch, for the trainer, the daemon and the service."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from trainer.calibration import calibrated
from trainer.model import load_tokenizer
from trainer.model_info import read_info
from trainer.windows import predict_texts


@dataclass(frozen=True)
class Classifier:
    """A loaded model; build it once with `load_classifier` and reuse it."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    labels: tuple[str, ...]
    max_length: int
    stride: int
    batch_size: int = 64
    temperature: float = 1.0

    def probabilities(self, texts: Sequence[str]) -> list[list[float]]:
        """Per text, each label's probability, calibrated by the model's temperature."""
        probabilities: list[list[float]] = calibrated(logits(self, texts), self.temperature).tolist()
        return probabilities


def load_classifier(model_dir: Path, batch_size: int = 64) -> Classifier:
    """Load `candidate.model_dir` for prediction."""
    info = read_info(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.eval()
    return Classifier(
        model=model,
        tokenizer=load_tokenizer(model_dir),
        labels=info.labels,
        max_length=info.max_length,
        stride=info.stride,
        batch_size=batch_size,
        temperature=info.temperature,
    )


def use_threads(threads: int) -> None:
    """How many CPU threads torch may use in this process."""
    torch.set_num_threads(threads)


def logits(classifier: Classifier, texts: Sequence[str]) -> torch.Tensor:
    """Per-text logits; a text longer than max_length is split into windows whose logits are averaged."""
    c = classifier
    return predict_texts(c.model, c.tokenizer, texts, c.max_length, c.stride, c.batch_size)
