"""A tiny random BERT saved to a temp folder, and synthetic labelled rows whose classes differ by vocabulary."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertModel, BertTokenizer

from trainer.data import Row, Split
from trainer.settings import TrainerSettings

WORDS_PER_CLASS = 12
CLASSES = ("alpha", "beta", "gamma", "delta")
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"w{i}" for i in range(WORDS_PER_CLASS * len(CLASSES) + 10)]


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.set_num_threads(1)
    folder = tmp_path_factory.mktemp("tiny-bert")
    # transformers 5 ignores `vocab_file=` here (the tokenizer silently maps every word to [UNK]): pass the dict.
    BertTokenizer(vocab={token: i for i, token in enumerate(VOCAB)}).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    return folder


def settings_for(base: Path, **changes: object) -> TrainerSettings:
    values: dict[str, object] = {
        "base_model": base,
        "max_length": 32,
        "stride": 8,
        "batch_size": 8,
        "grad_accumulation": 1,
        "learning_rate": 3e-2,
        "max_epochs": 5,
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
