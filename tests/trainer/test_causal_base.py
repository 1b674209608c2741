"""The packaged SmolLM2 becomes a plain Hugging Face directory once, and loads from it."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, BatchEncoding

from trainer.causal_base import packaged_smollm2


def test_the_packaged_gguf_is_converted_once_into_a_trainable_model(tmp_path: Path) -> None:
    folder = packaged_smollm2(tmp_path)
    written = (folder / "config.json").stat().st_mtime_ns
    assert packaged_smollm2(tmp_path) == folder
    assert (folder / "config.json").stat().st_mtime_ns == written
    assert [path.name for path in tmp_path.iterdir()] == [folder.name]  # no partial directory left behind

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder)
    prompt: BatchEncoding = tokenizer.apply_chat_template(  # type: ignore[assignment]
        [{"role": "user", "content": "Define the noun: kettle"}],
        add_generation_prompt=True,
        return_dict=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        logits = model(**prompt).logits
    assert sum(p.numel() for p in model.parameters()) == 134_515_008
    assert all(p.dtype == torch.float32 and p.requires_grad for p in model.parameters())
    assert logits.shape[-1] == 49_152
    assert torch.isfinite(logits).all()
