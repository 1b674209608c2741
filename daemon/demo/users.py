"""The demo's people: users who correct some of the service's wrong answers and confirm a few right ones, and a
reviewer who labels the audit sample. Their labels come from the dataset, so the demo knows the truth."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CORRECT_WRONG = 0.30  # share of wrong answers a user corrects
CONFIRM_RIGHT = 0.05  # share of right answers a user confirms


@dataclass(frozen=True)
class Served:
    """One prediction the service served, with the label the dataset says is right."""

    prediction_id: str
    predicted: str
    truth: str


def user_feedback(served: Sequence[Served], rng: random.Random) -> list[dict[str, Any]]:
    """The feedback users send: a correction for 30% of the wrong answers, a confirmation for 5% of the right."""
    records = []
    for prediction in served:
        wrong = prediction.predicted != prediction.truth
        if rng.random() < (CORRECT_WRONG if wrong else CONFIRM_RIGHT):
            kind = "correction" if wrong else "confirmation"
            records.append({"prediction_id": prediction.prediction_id, "label": prediction.truth, "kind": kind})
    return records


def reviewed(to_label: Sequence[dict[str, Any]], truth: Mapping[str, str]) -> list[dict[str, Any]]:
    """The audit export (`driftloop audit export`) with each label filled in by the reviewer."""
    return [{**record, "label": truth[record["prediction_id"]]} for record in to_label]
