from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from daemon.settings import flatten, load_settings, merge, parse_assignment
from drift.errors import DriftInputError
from drift.features import compute_features, unseen_counts
from drift.rows import FeedbackRows
from drift.settings import DriftSettings
from drift.signals import js_divergence


def test_features_of_a_small_batch() -> None:
    rows = FeedbackRows.from_lists([3, 5, 9], ["Flu, FLU!", "ab", "new words"], ["x", "y", "x"], ["x", None, "y"])
    codes: dict[str, int] = {"y": 0}

    features = compute_features(rows, codes, 1_024)
    total, missing = unseen_counts(features, 0, 3, pa.array(["flu", "words"]))

    assert codes == {"y": 0, "x": 1}
    assert features.label.tolist() == [1, 0, 1]
    assert np.array_equal(features.error, [0.0, np.nan, 1.0], equal_nan=True)
    assert features.tokens.to_pylist() == ["flu", "flu", "ab", "new", "words"]
    assert (total.tolist(), missing.tolist()) == ([2, 1, 2], [0, 1, 1])
    assert features.ngram_row.tolist() == [0] * 7 + [2] * 7  # "ab" has no trigram; none spans two texts
    assert features.ngram.max() < 1_024
    assert np.allclose(features.log_length, np.log1p([9, 2, 9]))


def test_js_divergence_is_zero_for_equal_mixes_and_one_for_disjoint_ones() -> None:
    divergence = js_divergence(np.array([2, 2, 0]), np.array([[1, 1, 0], [0, 0, 5], [0, 0, 0]]))

    assert divergence[0] == pytest.approx(0.0)
    assert divergence[1] == pytest.approx(1.0)
    assert np.isnan(divergence[2])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"window_rows": 510}, "multiple of check_every_rows"),
        ({"confirm_n": 6}, "cannot exceed confirm_m"),
        ({"ngram_buckets": 1000}, "power of two"),
        ({"error_threshold": 0}, "greater than 0"),
        ({"unknown": 1}, "Extra inputs"),
    ],
)
def test_bad_settings_are_refused_with_the_reason(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        DriftSettings.model_validate(overrides)


def test_every_setting_is_described_and_reaches_the_settings_tree(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [name for name in os.environ if name.startswith("DRIFTLOOP_")]:
        monkeypatch.delenv(name)
    config = tmp_path / "driftloop.toml"
    config.write_text('[drift]\nerror_detector = "ddm"\nwindow_rows = 600\nlabel_threshold = 0.3\n')
    monkeypatch.setenv("DRIFTLOOP_DRIFT_CONFIRM_N", "2")
    monkeypatch.setenv("DRIFTLOOP_DRIFT_LABEL_THRESHOLD", "0.2")
    monkeypatch.setenv("DRIFTLOOP_DRIFT_COOLDOWN_ROWS", "6000")
    overrides = merge(parse_assignment("drift.cooldown_rows=7000"), parse_assignment("drift.ngram_buckets=2048"))

    settings = load_settings(config, overrides)

    given = {
        "error_detector": "ddm",
        "window_rows": 600,
        "confirm_n": 2,
        "cooldown_rows": 7_000,
        "ngram_buckets": 2_048,
    }
    # label_threshold: the environment wins over the file; cooldown_rows: the flag wins over the environment
    assert settings.drift == DriftSettings(**given, label_threshold=0.2)
    assert not any(getattr(DriftSettings(), name) == value for name, value in given.items())  # none is a default
    described = {key: text for key, _, text in flatten(settings) if key.startswith("drift.")}
    assert set(described) == {f"drift.{name}" for name in DriftSettings.model_fields}
    assert [key for key, text in described.items() if not text.strip()] == []


def test_rows_must_be_consistent() -> None:
    with pytest.raises(DriftInputError, match="increase strictly"):
        FeedbackRows.from_lists([2, 1], ["a", "b"], ["x", "y"])
    with pytest.raises(DriftInputError, match="2 values for 3 row ids"):
        FeedbackRows.from_lists([1, 2, 3], ["a", "b"], ["x", "y", "z"])
    with pytest.raises(DriftInputError, match="lack the columns"):
        FeedbackRows.from_arrow(pa.table({"row_id": [1], "text": ["a"]}))
