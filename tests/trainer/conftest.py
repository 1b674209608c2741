"""A tiny random BERT saved to a temp folder, and synthetic labelled rows whose classes differ by vocabulary."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from tests.tiny_bert import save_tiny_bert
from trainer.data import Row, Split
from trainer.settings import TrainerSettings

WORDS_PER_CLASS = 12
CLASSES = ("alpha", "beta", "gamma", "delta")
WORDS = [f"w{i}" for i in range(WORDS_PER_CLASS * len(CLASSES) + 10)]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    return save_tiny_bert(tmp_path_factory.mktemp("tiny-bert"), WORDS)


def settings_for(base: Path, **changes: object) -> TrainerSettings:
    values: dict[str, object] = {
        "base_model": base,
        "max_length": 32,
        "stride": 8,
        "batch_size": 8,
        "grad_accumulation": 1,
        "learning_rate": 3e-2,
        "head_learning_rate": 3e-2,
        "max_epochs": 5,
        "lora_r": 8,  # with the rate above, rank 16 leaves one of the three classes unlearned in 5 epochs
        "lora_alpha": 16,
        "replay_size": 40,
        "torch_threads": 1,
        "latency_samples": 5,
        "log_every_steps": 1,
        "validation_fraction": 0.2,
    }
    return TrainerSettings.model_validate({**values, **changes})


@pytest.fixture
def settings(tiny_base: Path) -> TrainerSettings:
    return settings_for(tiny_base)


def text_of(label: str, rng: random.Random, length: int | None = None) -> str:
    band = CLASSES.index(label) * WORDS_PER_CLASS
    count = length or rng.randint(4, 10)
    noise = WORDS_PER_CLASS * len(CLASSES)
    words = [f"w{band + rng.randrange(WORDS_PER_CLASS)}" if rng.random() < 0.8 else f"w{noise + rng.randrange(10)}"
             for _ in range(count)]  # fmt: skip
    return " ".join(words)


def make_rows(
    labels: tuple[str, ...], per_class: int, episode: int, split: Split = "train", seed: int = 0
) -> list[Row]:
    rng = random.Random(f"{seed}-{episode}-{split}")
    return [
        Row(f"{split}-{episode}-{label}-{i}", text_of(label, rng), label, episode, split)
        for label in labels
        for i in range(per_class)
    ]
