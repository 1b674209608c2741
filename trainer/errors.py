"""The trainer package's error tree."""

from __future__ import annotations

from common.errors import DriftloopError


class TrainerError(DriftloopError):
    """Root of the errors raised by the trainer package."""


class BadTrainingData(TrainerError):
    """The rows given for a run cannot train a model (too few rows, no labels, an empty holdout)."""


class ModelLoadError(TrainerError):
    """A base model, parent adapter or candidate directory is missing or is not what it should be."""


class TrainingFailed(TrainerError):
    """A training run ended without a candidate; `record` says why (see `trainer.results.RunRecord`)."""

    def __init__(self, message: str, record_path: str | None = None) -> None:
        super().__init__(message)
        self.record_path = record_path


class TrainingCancelled(TrainingFailed):
    """A training run was cancelled (by the caller or a signal) and left no candidate."""
