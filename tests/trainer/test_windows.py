from __future__ import annotations

from pathlib import Path

import torch

from trainer.model import load_tokenizer
from trainer.windows import make_windows, text_logits


def test_sliding_windows_cover_a_long_text(tiny_base: Path) -> None:
    tokenizer = load_tokenizer(tiny_base)
    long_text = " ".join(f"w{i % 50}" for i in range(100))
    windows = make_windows(tokenizer, [long_text, "w1 w2"], max_length=16, stride=4)
    assert windows.owner.count(0) > 1
    assert windows.owner.count(1) == 1
    assert all(len(window) <= 16 for window in windows.input_ids)
    inner = [window[1:-1] for window, owner in zip(windows.input_ids, windows.owner, strict=True) if owner == 0]
    expected = tokenizer(long_text, add_special_tokens=False)["input_ids"]
    covered = list(inner[0])
    for previous, current in zip(inner, inner[1:], strict=False):
        assert previous[-4:] == current[:4]  # consecutive windows share `stride` tokens
        covered.extend(current[4:])
    assert covered == expected


def test_window_logits_are_averaged_per_text(tiny_base: Path) -> None:
    windows = make_windows(load_tokenizer(tiny_base), ["w1 " * 40, "w2"], max_length=16, stride=4)
    scores = torch.arange(len(windows.owner) * 2, dtype=torch.float32).reshape(-1, 2)
    per_text = text_logits(scores, windows)
    first = scores[[i for i, owner in enumerate(windows.owner) if owner == 0]].mean(dim=0)
    assert torch.allclose(per_text[0], first)
    assert torch.equal(per_text[1], scores[-1])
