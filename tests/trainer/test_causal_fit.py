"""LoRA on a tiny causal LM: the shared loop trains it on responses, keeps the best validation perplexity, and a
second run continues the first one's adapter."""

from __future__ import annotations

from pathlib import Path

from tests.trainer.causal_helpers import tiny_causal_lm
from tests.trainer.conftest import settings_for
from trainer.causal_examples import encode, perplexity
from trainer.causal_fit import causal_model, fit_causal

PAIRS = [(f"Define the noun: thing{i}", f"a small object number {i} kept in a box") for i in range(24)]


def test_training_lowers_the_response_perplexity_and_a_later_run_continues_the_adapter(tmp_path: Path) -> None:
    base = tiny_causal_lm(tmp_path / "base", [p + " " + r for p, r in PAIRS])
    settings = settings_for(
        base, task_kind="generation", learning_rate=5e-2, max_epochs=6, patience=3, batch_size=4, lora_r=8
    )
    model, tokenizer = causal_model(base, None, settings)
    examples = [encode(tokenizer, prompt, response, max_length=64) for prompt, response in PAIRS]
    train, validation = examples[:20], examples[20:]
    pad = tokenizer.pad_token_id
    before = perplexity(model.train(False), validation, pad)
    events: list[dict[str, object]] = []
    stats = fit_causal(model, tokenizer, train, [1.0] * 20, validation, settings, events.append, lambda: False)
    after = perplexity(model, validation, pad)
    assert stats.validation_metric == "perplexity"
    assert after < 0.85 * before  # a frozen random 30k-parameter model learns slowly; it must learn
    assert list(stats.validation_curve) == sorted(stats.validation_curve, reverse=True)
    assert after == min(stats.validation_curve) == stats.best_validation
    assert [event["perplexity"] for event in events if event["event"] == "validation"] == list(stats.validation_curve)
    assert 0 < stats.trainable_parameters < stats.total_parameters

    model.save_pretrained(str(tmp_path / "adapter"))
    continued, _ = causal_model(base, tmp_path / "adapter", settings)
    assert perplexity(continued.train(False), validation, pad) == after
    assert sum(p.numel() for p in continued.parameters() if p.requires_grad) == stats.trainable_parameters
