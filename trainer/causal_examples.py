"""Prompt and response pairs as a causal LM trains on them: the chat-formatted prompt, then the response and the
end-of-turn token, with the loss on the response tokens only; and the perplexity of responses given prompts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedTokenizerBase

from common.text_scores import pooled_perplexity
from trainer.decoding import chat_prompt

IGNORED = -100  # the target id cross-entropy skips


@dataclass(frozen=True)
class Example:
    input_ids: tuple[int, ...]
    labels: tuple[int, ...]  # IGNORED on the prompt, the token itself on the response


def encode(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, max_length: int) -> Example:
    """One example of at most `max_length` tokens: a prompt longer than half of it keeps its end, the response is
    cut to what is left (its end-of-turn token included when it fits)."""
    prompt_ids = tokenizer(chat_prompt(tokenizer, prompt), add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    prompt_ids = prompt_ids[-(max_length // 2) :] if len(prompt_ids) > max_length // 2 else prompt_ids
    response_ids = response_ids[: max_length - len(prompt_ids)]
    return Example(tuple(prompt_ids + response_ids), (IGNORED,) * len(prompt_ids) + tuple(response_ids))


def collate(examples: Sequence[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors: input_ids, attention_mask and labels (padding IGNORED)."""
    width = max(len(example.input_ids) for example in examples)
    pad = [width - len(example.input_ids) for example in examples]
    return {
        "input_ids": torch.tensor([[*e.input_ids, *[pad_id] * n] for e, n in zip(examples, pad, strict=True)]),
        "attention_mask": torch.tensor([[1] * len(e.input_ids) + [0] * n for e, n in zip(examples, pad, strict=True)]),
        "labels": torch.tensor([[*e.labels, *[IGNORED] * n] for e, n in zip(examples, pad, strict=True)]),
    }


def response_nll(model: torch.nn.Module, examples: Sequence[Example], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per example, the summed negative log-likelihood of its response tokens, and how many there are."""
    device = next(model.parameters()).device
    batch = {name: tensor.to(device) for name, tensor in collate(examples, pad_id).items()}
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    per_token = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2).float(), targets, ignore_index=IGNORED, reduction="none"
    )
    return per_token.sum(dim=1), (targets != IGNORED).sum(dim=1)


@torch.no_grad()
def response_losses(
    model: torch.nn.Module, examples: Sequence[Example], pad_id: int, batch_size: int = 8
) -> tuple[list[float], list[int]]:
    """Per example, the summed negative log-likelihood of its response tokens (nats), and how many there are."""
    losses: list[float] = []
    counts: list[int] = []
    for start in range(0, len(examples), batch_size):
        nll, tokens = response_nll(model, examples[start : start + batch_size], pad_id)
        losses += [float(value) for value in nll.tolist()]
        counts += [int(value) for value in tokens.tolist()]
    return losses, counts


def perplexity(model: torch.nn.Module, examples: Sequence[Example], pad_id: int, batch_size: int = 8) -> float:
    """exp of the mean negative log-likelihood per response token, over every example."""
    return pooled_perplexity(*response_losses(model, examples, pad_id, batch_size))
