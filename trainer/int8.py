"""The INT8 export (`trainer.quantize`) run by ONNX Runtime, with the windows of `trainer.windows` made by the
tokenizers library; importing this module does not import torch or transformers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime
from tokenizers import Tokenizer

from trainer.errors import ModelLoadError
from trainer.model_info import INT8_WEIGHTS, read_info


@dataclass(frozen=True)
class Int8Classifier:
    """An INT8 export loaded for prediction; build it once with `load_int8` and reuse it."""

    session: onnxruntime.InferenceSession
    tokenizer: Tokenizer  # truncates to max_length, the rest in overflowing windows sharing stride tokens
    labels: tuple[str, ...]
    batch_size: int
    temperature: float

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Per-text logits; a text longer than max_length is split into windows whose logits are averaged."""
        encodings = self.tokenizer.encode_batch(list(texts))
        windows = sorted(
            (
                (text, window.ids)
                for text, encoding in enumerate(encodings)
                for window in (encoding, *encoding.overflowing)
            ),
            key=lambda window: len(window[1]),
        )  # batched by length to pad little
        sums = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        counts = np.zeros((len(texts), 1), dtype=np.float32)
        for start in range(0, len(windows), self.batch_size):
            batch = windows[start : start + self.batch_size]
            ids = np.zeros((len(batch), len(batch[-1][1])), dtype=np.int64)  # padding is masked: its id is unread
            mask = np.zeros_like(ids)
            for row, (_, window) in enumerate(batch):
                ids[row, : len(window)], mask[row, : len(window)] = window, 1
            owners = [text for text, _ in batch]
            np.add.at(sums, owners, self.session.run(None, {"input_ids": ids, "attention_mask": mask})[0])
            np.add.at(counts, owners, 1.0)
        return sums / counts

    def probabilities(self, texts: Sequence[str]) -> list[list[float]]:
        """Per text, each label's probability, calibrated by the model's temperature."""
        logits = self.logits(texts) / self.temperature
        exp = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities: list[list[float]] = (exp / exp.sum(axis=1, keepdims=True)).tolist()
        return probabilities


def load_int8(model_dir: Path, batch_size: int, threads: int) -> Int8Classifier:
    """Load an INT8 export for prediction on `threads` CPU threads."""
    info = read_info(model_dir)
    if not (model_dir / INT8_WEIGHTS).is_file() or not (model_dir / "tokenizer.json").is_file():
        raise ModelLoadError(f"{model_dir} is not an INT8 export (no {INT8_WEIGHTS} or tokenizer.json)")
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(info.max_length, stride=info.stride)
    return Int8Classifier(cpu_session(model_dir / INT8_WEIGHTS, threads), tokenizer, info.labels, batch_size,
                          info.temperature)  # fmt: skip


def cpu_session(model_path: Path, threads: int) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on `threads` CPU threads, as the service runs every ONNX model."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Idle threads sleep instead of spinning: the service's HTTP and Kafka threads share these cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
