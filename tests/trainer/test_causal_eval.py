"""Greedy answers of a causal LM: only the new tokens, at most as many as asked, the same batched or alone."""

from __future__ import annotations

from pathlib import Path

from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainer.causal_helpers import tiny_causal_lm
from trainer.causal_eval import generate

PROMPTS = ["Define the noun: kettle", "Define the verb: run quickly over the hills", "hi"]


def test_answers_hold_only_new_tokens_and_do_not_depend_on_the_batch(tmp_path: Path) -> None:
    folder = tiny_causal_lm(tmp_path, [*PROMPTS, "a metal pot for boiling water"])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    batched = generate(model, tokenizer, PROMPTS, max_new_tokens=6, batch_size=3)
    alone = [answer for prompt in PROMPTS for answer in generate(model, tokenizer, [prompt], max_new_tokens=6)]
    assert batched == alone
    assert len(batched) == len(PROMPTS)
    assert all(len(tokenizer(answer, add_special_tokens=False)["input_ids"]) <= 7 for answer in batched)
    assert not [answer for answer in batched if "<|im_start|>" in answer or "Define the" in answer]
    assert tokenizer.padding_side == "right"
