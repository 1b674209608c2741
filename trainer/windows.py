"""Sliding windows over long texts: tokenization, padding into batches, and logits aggregated per text."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from trainer.errors import ModelLoadError


@dataclass(frozen=True)
class Windows:
    """Token windows of some texts; `owner[i]` is the index of the text window i comes from."""

    input_ids: tuple[tuple[int, ...], ...]
    owner: tuple[int, ...]
    texts: int


def make_windows(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, stride: int) -> Windows:
    """Every text as one or more windows of at most `max_length` tokens, consecutive ones sharing `stride` tokens."""
    if not tokenizer.is_fast:
        raise ModelLoadError("sliding windows need a fast tokenizer (tokenizer.json); save the model with one")
    if not texts:
        return Windows(input_ids=(), owner=(), texts=0)
    encoded = tokenizer(
        list(texts),
        truncation=True,
        max_length=max_length,
        stride=stride,
        return_overflowing_tokens=True,
        return_attention_mask=False,
        return_token_type_ids=False,
    )
    ids = tuple(tuple(window) for window in encoded["input_ids"])
    owner = tuple(int(i) for i in encoded["overflow_to_sample_mapping"])
    return Windows(input_ids=ids, owner=owner, texts=len(texts))


def collate(windows: Sequence[Sequence[int]], pad_id: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Pad a batch of windows to its longest one (built on CPU, then moved to `device` in one copy each)."""
    width = max(len(window) for window in windows)
    input_ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(windows), width), dtype=torch.long)
    for row, window in enumerate(windows):
        input_ids[row, : len(window)] = torch.tensor(window, dtype=torch.long)
        attention[row, : len(window)] = 1
    return {"input_ids": input_ids.to(device), "attention_mask": attention.to(device)}


@torch.inference_mode()
def window_logits(model: torch.nn.Module, windows: Windows, batch_size: int, pad_id: int) -> torch.Tensor:
    """Logits of every window (in window order), batched by length to pad little."""
    order = sorted(range(len(windows.input_ids)), key=lambda i: len(windows.input_ids[i]))
    outputs: list[torch.Tensor] = []
    device = next(model.parameters()).device
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size]
        batch = collate([windows.input_ids[i] for i in chunk], pad_id, device)
        outputs.append(model(**batch).logits.float().cpu())
    logits = torch.cat(outputs)
    result = torch.empty_like(logits)
    result[torch.tensor(order)] = logits
    return result


def text_logits(window_scores: torch.Tensor, windows: Windows) -> torch.Tensor:
    """Mean of each text's window logits."""
    owner = torch.tensor(windows.owner, dtype=torch.long)
    sums = torch.zeros((windows.texts, window_scores.shape[1]), dtype=window_scores.dtype)
    sums.index_add_(0, owner, window_scores)
    counts = torch.bincount(owner, minlength=windows.texts).clamp(min=1).unsqueeze(1)
    return sums / counts


def predict_texts(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], max_length: int, stride: int,
    batch_size: int,
) -> torch.Tensor:  # fmt: skip
    """Per-text logits, windows aggregated; the model must be in eval mode."""
    windows = make_windows(tokenizer, texts, max_length, stride)
    if not windows.input_ids:
        return torch.empty((0, 0))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return text_logits(window_logits(model, windows, batch_size, int(pad_id)), windows)
