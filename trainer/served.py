"""The model the service serves: the merged model in torch, or its INT8 export in ONNX Runtime, and its predictions.

Importing this module imports neither torch nor ONNX Runtime, and serving INT8 never imports torch: torch and
transformers are most of an fp32 service's memory.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from trainer.model_info import INT8_WEIGHTS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Prediction:
    label: str
    scores: dict[str, float]  # softmax probability per label


class Served(Protocol):
    @property
    def labels(self) -> tuple[str, ...]: ...

    def probabilities(self, texts: Sequence[str]) -> list[list[float]]:
        """Softmax probabilities per text, in `labels` order."""
        ...


def load_served(model_dir: Path, int8_dir: Path | None, int8: bool, batch_size: int, threads: int) -> Served:
    """The model a service serves on `threads` CPU threads: with `int8`, the INT8 export (`int8_dir`), else, or when
    the model has none, `model_dir`."""
    if int8 and int8_dir is not None and (int8_dir / INT8_WEIGHTS).is_file():
        from trainer.int8 import load_int8

        return load_int8(int8_dir, batch_size, threads)
    if int8:
        log.warning("%s has no ONNX INT8 export (trainer.export_int8 was off when it was trained, or the export "
                    "predates ONNX Runtime); serving it in fp32", model_dir.parent)  # fmt: skip
    from trainer.predict import load_classifier, use_threads

    use_threads(threads)
    return load_classifier(model_dir, batch_size)


def predict(model: Served, texts: Sequence[str]) -> list[Prediction]:
    """The label and the probability of every label for each text."""
    if not texts:
        return []
    labels = model.labels
    return [
        Prediction(label=labels[max(range(len(row)), key=row.__getitem__)], scores=dict(zip(labels, row, strict=True)))
        for row in model.probabilities(texts)
    ]
