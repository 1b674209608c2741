"""Prompt and response pairs for a causal LM: the loss falls on the response only, and perplexity measures it."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainer.causal_helpers import tiny_causal_lm
from trainer.causal_examples import IGNORED, collate, encode, perplexity
from trainer.decoding import chat_prompt

PAIRS = [
    ("Define the noun: kettle", "a metal pot for stewing or boiling"),
    ("Define the noun: cat", "a small domesticated feline mammal"),
    ("Define the verb: run", "move fast by using one's feet"),
    ("Define the verb: breathe", "draw air into, and expel out of, the lungs"),
]


def test_the_loss_falls_on_the_response_and_its_end_of_turn(tmp_path: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_causal_lm(tmp_path, [p + " " + r for p, r in PAIRS]))
    prompt, response = PAIRS[0]
    example = encode(tokenizer, prompt, response, max_length=128)
    scored = [token for token in example.labels if token != IGNORED]
    assert tokenizer.decode(list(example.input_ids)) == chat_prompt(tokenizer, prompt) + response + "<|im_end|>"
    assert tokenizer.decode(scored) == response + "<|im_end|>"
    assert example.labels[: len(example.labels) - len(scored)] == (IGNORED,) * (len(example.labels) - len(scored))

    full = encode(tokenizer, prompt, response * 3, max_length=128)
    short = encode(tokenizer, prompt, response * 3, max_length=16)  # the prompt keeps its last 8 tokens
    prompt_length = len(full.labels) - sum(token != IGNORED for token in full.labels)
    assert len(short.input_ids) == len(short.labels) == 16
    assert short.input_ids[:8] == full.input_ids[prompt_length - 8 : prompt_length]
    assert short.input_ids[8:] == full.input_ids[prompt_length : prompt_length + 8]
    assert short.labels == (IGNORED,) * 8 + short.input_ids[8:]
    batch = collate([example, short], tokenizer.pad_token_id)
    assert batch["input_ids"].shape == batch["labels"].shape == (2, len(example.input_ids))
    assert batch["attention_mask"][1].sum() == 16
    assert (batch["labels"][1, 16:] == IGNORED).all()


def test_perplexity_falls_as_the_model_learns_the_responses(tmp_path: Path) -> None:
    folder = tiny_causal_lm(tmp_path, [p + " " + r for p, r in PAIRS])
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    examples = [encode(tokenizer, prompt, response, max_length=128) for prompt, response in PAIRS]
    before = perplexity(model, examples, tokenizer.pad_token_id)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    batch = collate(examples, tokenizer.pad_token_id)
    for _ in range(40):
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.train(False)
    after = perplexity(model, examples, tokenizer.pad_token_id, batch_size=3)
    assert before > 50 * after
    assert after < 5
