"""A tiny randomly initialised BERT and its tokenizer, saved to a folder: the stand-in model of the tests."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import BertConfig, BertForSequenceClassification, BertModel, BertTokenizer

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def save_tiny_bert(
    folder: Path, words: Sequence[str], seed: int = 0, labels: Sequence[str] = (), max_positions: int = 128
) -> Path:
    """Save a 2-layer, 32-wide BERT (a classifier over `labels` when given) with a tokenizer over `words`."""
    vocab = [*SPECIAL_TOKENS, *words]
    folder.mkdir(parents=True, exist_ok=True)
    # transformers 5 ignores `vocab_file=` here (the tokenizer silently maps every word to [UNK]): pass the dict.
    BertTokenizer(vocab={token: i for i, token in enumerate(vocab)}).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=max_positions,
    )
    torch.manual_seed(seed)
    if labels:
        config.num_labels = len(labels)
        config.id2label = dict(enumerate(labels))
        config.label2id = {label: i for i, label in enumerate(labels)}
        BertForSequenceClassification(config).save_pretrained(folder)
    else:
        BertModel(config).save_pretrained(folder)
    return folder
