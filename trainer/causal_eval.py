"""Answers a causal LM writes for prompts (greedy, or sampled at a temperature, with the guide's repetition
penalty): the one generation path of the trainer's evaluation, the service (`trainer.causal_served`) and the benches;
common.text_scores scores them against reference answers."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from trainer.decoding import BATCH_SIZE, REPETITION_PENALTY, chat_prompt


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    max_new_tokens: int,
    batch_size: int = BATCH_SIZE,
    repetition_penalty: float = REPETITION_PENALTY,
    min_new_tokens: int = 0,
    temperature: float = 0.0,
) -> list[str]:
    """Answers to `prompts`, each up to `max_new_tokens` tokens (at least `min_new_tokens`: the end of turn is held
    back until then), without the prompt or the end-of-turn: greedy at `temperature` 0, else sampled from the
    temperature-scaled distribution (transformers' default top-k of 50 applies)."""
    model.train(False)
    device = next(model.parameters()).device
    sampling = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
    answers: list[str] = []
    for start in range(0, len(prompts), batch_size):
        texts = [chat_prompt(tokenizer, prompt) for prompt in prompts[start : start + batch_size]]
        # left padding: generation continues every row at its end
        inputs = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=False)
        output = model.generate(  # type: ignore[operator]  # a causal LM, or a PeftModel around one
            **inputs.to(device),
            max_new_tokens=max_new_tokens,
            min_new_tokens=min_new_tokens,
            repetition_penalty=repetition_penalty,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **sampling,
        )
        new = output[:, inputs["input_ids"].shape[1] :]
        answers.extend(text.strip() for text in tokenizer.batch_decode(new, skip_special_tokens=True))
    return answers
