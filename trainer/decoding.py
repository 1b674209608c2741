"""How answers are decoded, the same for the gate's evaluation and the service (a module without torch, so the
service can read it whatever kind of model it serves)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

REPETITION_PENALTY = 1.2  # the guide's generation setting
BATCH_SIZE = 16  # prompts per forward pass


def chat_prompt(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """`prompt` as the user's turn in the model's chat template, ending where the assistant's answer begins."""
    text = tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
                                         add_generation_prompt=True)  # fmt: skip
    return str(text)
