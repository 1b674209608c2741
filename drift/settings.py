"""Settings of the `drift` section: signals, their thresholds and the policy that turns alarms into events."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator


class DriftSettings(BaseModel):
    """Which stream drift is detected over, how, and when a drift event is raised."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    stream: Literal["served", "feedback"] = Field(
        "served",
        description="What the monitor watches: `served`, every prediction in the prediction log, with the labels "
        "people sent for it (a correction, or an audit label) joined by prediction id; `feedback`, the stored "
        "feedback rows, for a deployment without the prediction log.",
    )
    output: Literal["labels", "answers"] = Field(
        "labels",
        description="What the served model outputs: `labels`, a class per text; `answers`, a text per prompt (a "
        "generation model, whose label is the corrected answer; trainer.task_kind=generation sets it unless told "
        "otherwise): `label_mix` is then not evaluated and `edit` watches how much of each answer people rewrote.",
    )
    served_label_wait_s: float = Field(
        30.0,
        ge=0.0,
        description="`served`: a prediction is watched once it is this old, so the correction or audit label sent "
        "soon after it is seen with it.",
    )

    warmup_rows: int = Field(
        2_000,
        ge=100,
        description="Rows collected as the reference (vocabulary, label mix, means) after start, an event or a "
        "rebaseline; no event fires while they are collected.",
    )
    check_every_rows: int = Field(
        25, ge=1, description="Signals are evaluated against their thresholds once every this many rows."
    )
    window_rows: int = Field(
        500,
        ge=1,
        description="Rows in the recent window compared with the reference; a multiple of check_every_rows.",
    )
    min_window_rows: int = Field(
        200,
        ge=1,
        description="Fewest usable rows (e.g. rows with a prediction) a signal needs in the window and in the "
        "reference to be evaluated.",
    )
    confirm_n: int = Field(
        3, ge=1, description="A signal must exceed its threshold in confirm_n of the last confirm_m checks."
    )
    confirm_m: int = Field(5, ge=1, description="Number of recent checks the N-of-M confirmation looks at.")
    cooldown_rows: int = Field(
        5_000,
        ge=0,
        description="Rows ignored after an event (the shift settles, a retrain runs) before the new warm-up starts.",
    )
    error_detector: Literal["adwin", "ddm", "hddm_a"] = Field(
        "adwin", description="river detector watching the per-row error stream (1 = prediction differs from label)."
    )
    adwin_delta: float = Field(
        0.002,
        gt=0.0,
        lt=1.0,
        description="Significance of the ADWIN detectors on the numeric signals; smaller is stricter.",
    )
    error_threshold: float = Field(
        0.05, gt=0.0, le=1.0, description="Rise of the error rate over the reference (absolute, 0.05 = 5 points)."
    )
    edit_threshold: float = Field(
        0.03,
        gt=0.0,
        le=1.0,
        description="`answers`: rise of the mean share of each served answer that people rewrote (word edit distance "
        "to the corrected answer over the longer one's words; 0 for an answer kept) over the reference, absolute "
        "(0.03 = 3 points).",
    )
    unseen_threshold: float = Field(
        0.05,
        gt=0.0,
        le=1.0,
        description="Rise of the share of tokens not in the reference vocabulary, over its Good-Turing estimate.",
    )
    length_threshold: float = Field(
        0.5, gt=0.0, description="Change of the mean log text length, in reference standard deviations (either way)."
    )
    ngram_threshold: float = Field(
        0.05, gt=0.0, le=1.0, description="Jensen-Shannon divergence (bits) of character trigram distributions."
    )
    ngram_buckets: int = Field(
        1_024, ge=16, le=65_536, description="Hash buckets for character trigrams; a power of two."
    )
    label_threshold: float = Field(
        0.05, gt=0.0, le=1.0, description="Jensen-Shannon divergence (bits) between reference and recent label mix."
    )
    confidence_threshold: float = Field(
        0.5,
        gt=0.0,
        description="Drop of the mean production-model confidence, in reference standard deviations.",
    )
    distance_threshold: float = Field(
        0.5,
        gt=0.0,
        description="Rise of the mean embedding distance to the reference centroid, in reference standard deviations.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.window_rows % self.check_every_rows:
            raise ValueError(
                f"window_rows ({self.window_rows}) must be a multiple of check_every_rows ({self.check_every_rows})"
            )
        if self.confirm_n > self.confirm_m:
            raise ValueError(f"confirm_n ({self.confirm_n}) cannot exceed confirm_m ({self.confirm_m})")
        if self.ngram_buckets & (self.ngram_buckets - 1):
            raise ValueError(f"ngram_buckets ({self.ngram_buckets}) must be a power of two, e.g. 1024")
        if self.min_window_rows > self.window_rows:
            raise ValueError(f"min_window_rows ({self.min_window_rows}) cannot exceed window_rows ({self.window_rows})")
        return self
