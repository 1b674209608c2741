"""Users' corrections and confirmations weighted to the served error rate the audit sample measures."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.trainer.conftest import make_rows, settings_for
from trainer.data import Row, select_rows
from trainer.feedback_mix import mix_weights, served_error_rate

BASE = Path("unused")


def sent(kind: str, count: int, label: str = "alpha", prediction: str = "beta") -> list[Row]:
    return [Row(f"{kind}-{i}", f"{kind} text {i}", label, 1, "holdout" if kind == "audit" else "train", kind,
                prediction) for i in range(count)]  # fmt: skip


def audits(wrong: int, right: int) -> list[Row]:
    return sent("audit", wrong, "alpha", "beta") + [
        Row(f"right-{i}", f"audit right {i}", "alpha", 1, "holdout", "audit", "alpha") for i in range(right)
    ]


def test_the_audited_error_rate_is_smoothed_and_needs_enough_rows() -> None:
    assert served_error_rate(audits(wrong=10, right=30), min_audit_rows=40)[1] == pytest.approx(11 / 42)
    assert served_error_rate(audits(wrong=10, right=29), min_audit_rows=40) == (39, None)
    assert served_error_rate(audits(wrong=0, right=40), min_audit_rows=40)[1] == pytest.approx(1 / 42)
    assert served_error_rate(audits(wrong=10, right=30), min_audit_rows=0) == (40, None)
    unknown = [Row("a", "t", "alpha", 1, "holdout", "audit", None)] * 50
    assert served_error_rate(unknown, min_audit_rows=1) == (0, None)


def test_corrections_carry_the_error_rate_and_the_new_rows_keep_their_weight() -> None:
    window = sent("correction", 30) + sent("confirmation", 10) + sent("label", 5) + audits(wrong=20, right=20)
    train = [row for row in window if row.split == "train"] + make_rows(("alpha",), 10, 0)
    new_ids = {row.id for row in window}
    weights, mix = mix_weights(train, [2.0] * 45 + [0.5] * 10, new_ids, window, min_audit_rows=30)
    by_kind = {kind: [w for row, w in zip(train, weights, strict=True) if row.kind == kind and row.id in new_ids]
               for kind in ("correction", "confirmation", "label")}  # fmt: skip
    assert (mix.applied, mix.corrections, mix.confirmations, mix.audit_rows) == (True, 30, 10, 40)
    assert sum(by_kind["correction"]) == pytest.approx(0.5 * 80)  # 21/42 of the 40 rows' weight of 2 each
    assert sum(by_kind["confirmation"]) == pytest.approx(0.5 * 80)
    assert by_kind["label"] == [2.0] * 5
    assert weights[45:] == (0.5,) * 10  # replayed rows untouched


@pytest.mark.parametrize(
    ("window", "why"),
    [
        (sent("correction", 30) + audits(wrong=20, right=20), "no confirmations"),
        (sent("correction", 30) + sent("confirmation", 5) + audits(wrong=5, right=5), "too few audits"),
    ],
)
def test_without_both_kinds_or_enough_audits_nothing_is_weighted(window: list[Row], why: str) -> None:
    train = [row for row in window if row.split == "train"]
    weights, mix = mix_weights(train, [1.0] * len(train), {row.id for row in train}, window, min_audit_rows=30)
    assert weights == (1.0,) * len(train), why
    assert not mix.applied, why


def test_a_run_weights_what_users_sent_and_says_so() -> None:
    window = sent("correction", 60) + sent("confirmation", 20) + audits(wrong=30, right=10)
    data = select_rows(window, [], settings_for(BASE, dedup_threshold=1.0, validation_fraction=0.1))
    assert data.mix is not None
    assert data.mix.applied
    weight = dict(zip((row.kind for row in data.train), data.train_weights, strict=False))
    assert weight["confirmation"] / weight["correction"] == pytest.approx((11 / 42) / (31 / 42) * 60 / 20, rel=0.2)
    unweighted = select_rows(window, [], settings_for(BASE, dedup_threshold=1.0, mix_min_audit_rows=0))
    assert set(unweighted.train_weights) == {1.0}
