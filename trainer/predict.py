"""Prediction with a merged (or INT8) candidate model, for the daemon and the service."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerBase

from trainer.errors import ModelLoadError
from trainer.model import LABELS_FILE, load_tokenizer
from trainer.quantize import is_int8, load_int8, quantize
from trainer.windows import predict_texts


@dataclass(frozen=True)
class Prediction:
    label: str
    scores: dict[str, float]  # softmax probability per label


@dataclass(frozen=True)
class Classifier:
    """A loaded model; build it once with `load_classifier` and reuse it."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    labels: tuple[str, ...]
    max_length: int
    stride: int
    batch_size: int = 64


def load_classifier(model_dir: Path, batch_size: int = 64) -> Classifier:
    """Load `candidate.model_dir` (or an INT8 export) for prediction."""
    info_path = model_dir / LABELS_FILE
    if not info_path.is_file():
        raise ModelLoadError(f"{model_dir} is not a driftloop model directory (no {LABELS_FILE})")
    info = json.loads(info_path.read_text())
    if is_int8(model_dir):
        model = load_int8(model_dir)
    else:
        model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    model.eval()
    return Classifier(
        model=model,
        tokenizer=load_tokenizer(model_dir),
        labels=tuple(info["labels"]),
        max_length=int(info["max_length"]),
        stride=int(info["stride"]),
        batch_size=batch_size,
    )


def load_served(model_dir: Path, int8_dir: Path | None, int8: bool, batch_size: int) -> Classifier:
    """The model a service serves: with `int8`, the INT8 export when there is one, else `model_dir` quantized at
    load; without it, `model_dir` as it is."""
    if int8 and int8_dir is not None and int8_dir.is_dir():
        return load_classifier(int8_dir, batch_size)
    classifier = load_classifier(model_dir, batch_size)
    if int8:
        quantize(classifier.model)
    return classifier


def use_threads(threads: int) -> None:
    """How many CPU threads torch may use in this process."""
    torch.set_num_threads(threads)


def logits(classifier: Classifier, texts: Sequence[str]) -> torch.Tensor:
    """Per-text logits; a text longer than max_length is split into windows whose logits are averaged."""
    c = classifier
    return predict_texts(c.model, c.tokenizer, texts, c.max_length, c.stride, c.batch_size)


def predict(model: Path | Classifier, texts: Sequence[str]) -> list[Prediction]:
    """The label and the probability of every label for each text."""
    classifier = load_classifier(model) if isinstance(model, Path) else model
    if not texts:
        return []
    probabilities = torch.softmax(logits(classifier, texts), dim=1).tolist()
    labels = classifier.labels
    return [
        Prediction(label=labels[max(range(len(row)), key=row.__getitem__)], scores=dict(zip(labels, row, strict=True)))
        for row in probabilities
    ]
