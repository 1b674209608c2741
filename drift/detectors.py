"""river detectors: which one watches which signal, what it is fed, and where it fired."""

from __future__ import annotations

from typing import Any

import numpy as np
from river import drift as _river_drift

from drift.reference import Reference
from drift.rows import FloatArray, IntArray
from drift.settings import DriftSettings

Detector = Any  # a river DriftDetector; river ships no type hints

BASELINES = ("adwin", "ddm", "hddm_a")
ADWIN_WATCHED = ("edit", "unseen", "length", "confidence", "distance")  # the error detector is chosen by a setting
river_drift: Any = _river_drift


def error_detector(kind: str, delta: float | None = None) -> Detector:
    if kind == "adwin":
        return river_drift.ADWIN() if delta is None else river_drift.ADWIN(delta=delta)
    if kind == "ddm":
        return river_drift.binary.DDM()
    if kind == "hddm_a":
        return river_drift.binary.HDDMA()
    raise ValueError(f"unknown error detector {kind!r}; use one of {BASELINES}")


def make_detectors(settings: DriftSettings) -> dict[str, Detector]:
    """Fresh detectors for the signals that a river detector watches row by row."""
    adwin = {name: river_drift.ADWIN(delta=settings.adwin_delta) for name in ADWIN_WATCHED}
    return {"error": error_detector(settings.error_detector, settings.adwin_delta), **adwin}


def detector_inputs(
    shares: dict[str, FloatArray],
    unseen: tuple[FloatArray, FloatArray],
    standardised: dict[str, FloatArray],
    reference: Reference,
) -> dict[str, FloatArray]:
    """Per-row values in [0, 1] for each detector (NaN: the row has no such value and is skipped).

    `shares` (error, edit) are in [0, 1] already. Continuous values are standardised against the reference and
    squashed into [0, 1] (4 standard deviations either way), the range ADWIN's bound assumes.
    """
    tokens, missing = unseen
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(tokens > 0, missing / tokens, np.nan)
    inputs = {**shares, "unseen": share}
    for name, values in standardised.items():
        moments = reference.moments[name]
        if moments.count < 2:
            inputs[name] = np.full(len(values), np.nan)
            continue
        z = (values - moments.mean) / max(moments.std, 1e-9)
        inputs[name] = np.clip(0.5 + z / 8, 0.0, 1.0)
    return inputs


def feed(detector: Detector, values: FloatArray) -> IntArray:
    """Update `detector` with every non-NaN value in order; the positions where it reported drift."""
    positions = np.flatnonzero(~np.isnan(values))
    update = detector.update
    fired: list[int] = []
    for position, value in zip(positions.tolist(), values[positions].tolist(), strict=True):
        update(value)
        if detector.drift_detected:
            fired.append(position)
    return np.asarray(fired, dtype=np.int64)
