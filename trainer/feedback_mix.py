"""Weighting users' corrections and confirmations to the traffic they came from.

Users correct some of the wrong answers and confirm fewer of the right ones, so what they send is mostly the
model's mistakes: 285 corrections to 46 confirmations on traffic the model got wrong 47% of the time (the
sentiment stream of bench/feedback_loop.py). Trained on as sent, the run learns that mix, and overturns answers
the model had right. The audit sample is a random draw of served predictions, so the share of its rows whose
served prediction was wrong estimates the served error rate. A run's corrections are weighted to carry that share
of the weight its corrections and confirmations carry together, confirmations the rest; rows of other kinds keep
their weight, and so does the new window as a whole (what `new_window_share` set).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainer.data import Row


@dataclass(frozen=True)
class FeedbackMix:
    """What weighting by the audit sample did, for the run's record."""

    audit_rows: int  # newest-window audit rows with the served prediction known
    served_error_rate: float | None  # their share of wrong served predictions; None below the minimum
    corrections: int
    confirmations: int
    applied: bool


def served_error_rate(window: Sequence[Row], min_audit_rows: int) -> tuple[int, float | None]:
    """The window's audit rows that know their served prediction, and the share of them it got wrong, smoothed
    (Laplace: one wrong and one right added, so that neither kind's weight falls to zero); None when fewer than
    `min_audit_rows`, or `min_audit_rows` is 0."""
    audits = [row for row in window if row.kind == "audit" and row.prediction is not None]
    if min_audit_rows == 0 or len(audits) < min_audit_rows:
        return len(audits), None
    return len(audits), (sum(row.prediction != row.label for row in audits) + 1) / (len(audits) + 2)


def mix_weights(
    train: Sequence[Row], weights: Sequence[float], new_ids: set[str], window: Sequence[Row], min_audit_rows: int
) -> tuple[tuple[float, ...], FeedbackMix]:
    """`weights` with the new corrections and confirmations reweighted to the audited error rate (their mean
    weight unchanged); unchanged when either kind is missing or the audit sample is too small."""
    audit_rows, error_rate = served_error_rate(window, min_audit_rows)
    picked = [i for i, row in enumerate(train) if row.id in new_ids and row.kind in ("correction", "confirmation")]
    corrections = sum(train[i].kind == "correction" for i in picked)
    confirmations = len(picked) - corrections
    mix = FeedbackMix(audit_rows, error_rate, corrections, confirmations, applied=False)
    if error_rate is None or corrections == 0 or confirmations == 0:
        return tuple(weights), mix
    share = {"correction": error_rate / corrections, "confirmation": (1 - error_rate) / confirmations}
    mean_before = sum(weights[i] for i in picked) / len(picked)
    scale = mean_before * len(picked)  # the shares sum to 1 over the picked rows; their total weight is kept
    mixed = list(weights)
    for i in picked:
        mixed[i] = share[train[i].kind] * scale
    return tuple(mixed), FeedbackMix(audit_rows, error_rate, corrections, confirmations, applied=True)
