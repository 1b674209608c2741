"""Temperature scaling: the fitted temperature makes confidence match accuracy, and never changes a prediction."""

from __future__ import annotations

import torch

from trainer.calibration import calibrated, fit_temperature


def overconfident(rows: int = 4_000, seed: int = 0) -> tuple[torch.Tensor, list[int]]:
    """Logits of a model that is right 70% of the time but 99% sure of every answer."""
    generator = torch.Generator().manual_seed(seed)
    truth = torch.randint(0, 3, (rows,), generator=generator)
    right = torch.rand(rows, generator=generator) < 0.7
    answer = torch.where(right, truth, (truth + 1 + torch.randint(0, 2, (rows,), generator=generator)) % 3)
    logits = torch.zeros(rows, 3)
    logits[torch.arange(rows), answer] = 5.3  # softmax top probability ~0.99
    return logits, truth.tolist()


def test_an_overconfident_model_is_cooled_until_confidence_matches_accuracy() -> None:
    logits, truth = overconfident()
    temperature = fit_temperature(logits, truth)
    assert temperature > 2.0
    confidence = calibrated(logits, temperature).max(dim=1).values.mean().item()
    assert abs(confidence - 0.7) < 0.02, "the mean top probability estimates the accuracy"
    assert torch.equal(calibrated(logits, temperature).argmax(dim=1), logits.argmax(dim=1))


def test_without_rows_the_temperature_is_one() -> None:
    assert fit_temperature(torch.zeros(0, 3), []) == 1.0
