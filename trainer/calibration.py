"""Temperature scaling (Guo et al., 2017): one number T, fitted on the held-out rows after training, so that
softmax(logits / T) says how often the model is right. The argmax, and with it every prediction, is unchanged;
the served confidence becomes an estimate of accuracy (what `driftloop status` averages over served traffic)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F  # noqa: N812

LOWEST, HIGHEST = 0.05, 20.0
STEPS = 60  # golden-section steps over log T: the bracket shrinks to 1e-12 of its width


def fit_temperature(logits: torch.Tensor, targets: Sequence[int]) -> float:
    """The T in [0.05, 20] that minimises the negative log-likelihood of `targets` under softmax(logits / T) (the
    likelihood is unimodal in log T); 1.0 without rows."""
    if not len(targets):
        return 1.0
    truth = torch.tensor(list(targets), dtype=torch.long)
    scores = logits.detach().float().cpu()

    def nll(log_t: float) -> float:
        return float(F.cross_entropy(scores / math.exp(log_t), truth))

    ratio = (math.sqrt(5) - 1) / 2
    low, high = math.log(LOWEST), math.log(HIGHEST)
    left, right = high - ratio * (high - low), low + ratio * (high - low)
    left_loss, right_loss = nll(left), nll(right)
    for _ in range(STEPS):
        if left_loss < right_loss:
            high, right, right_loss = right, left, left_loss
            left = high - ratio * (high - low)
            left_loss = nll(left)
        else:
            low, left, left_loss = left, right, right_loss
            right = low + ratio * (high - low)
            right_loss = nll(right)
    return math.exp((low + high) / 2)


def calibrated(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits / temperature, dim=1)
