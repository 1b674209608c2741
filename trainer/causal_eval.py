"""Answers a causal LM writes for prompts (greedy, with the guide's repetition penalty); common.text_scores scores
them against reference answers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from trainer.causal_examples import chat_prompt

REPETITION_PENALTY = 1.2  # the guide's generation setting


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 16,
    repetition_penalty: float = REPETITION_PENALTY,
    min_new_tokens: int = 0,
) -> list[str]:
    """Greedy answers to `prompts`, each up to `max_new_tokens` tokens (at least `min_new_tokens`: the end of turn
    is held back until then), without the prompt or the end-of-turn."""
    model.train(False)
    device = next(model.parameters()).device
    side, tokenizer.padding_side = tokenizer.padding_side, "left"  # generation continues every row at its end
    answers: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            texts = [chat_prompt(tokenizer, prompt) for prompt in prompts[start : start + batch_size]]
            inputs = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(device)
            output = model.generate(  # type: ignore[operator]  # a causal LM, or a PeftModel around one
                **inputs,
                max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens,
                do_sample=False,
                repetition_penalty=repetition_penalty,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
            new = output[:, inputs["input_ids"].shape[1] :]
            answers.extend(text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True))
    finally:
        tokenizer.padding_side = side
    return answers
