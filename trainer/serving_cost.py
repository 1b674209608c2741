"""What a model costs as the service runs it: latency and peak memory measured in a fresh process that loads the
model as the service does (INT8 or not, its batch size, its thread count) and predicts the given texts.

The training process cannot measure this: its resident memory still holds the training state (on long texts
it read 2.6-3.1 GB where the service for the same model peaked at 1.1 GB). Importing this module does not
import torch; the child process does, unless it serves INT8.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trainer.errors import TrainerError
from trainer.served import Served, load_served, predict

MEASURE_TIMEOUT_S = 900.0


@dataclass(frozen=True)
class ServedAs:
    """How the service runs a model (the registry's serving settings, handed over by the daemon)."""

    int8: bool
    batch_size: int
    max_batch_texts: int
    threads: int


@dataclass(frozen=True)
class ServingCost:
    latency_ms_p50: float  # one text a request
    latency_ms_p99: float
    peak_memory_mb: float  # the measuring process's peak resident memory: interpreter, runtime, model, batches
    texts: int


@dataclass(frozen=True)
class _Request:
    model_dir: str
    int8_dir: str | None
    served_as: ServedAs
    texts: list[str]
    latency_samples: int

    @classmethod
    def from_json(cls, text: str) -> _Request:
        values = json.loads(text)
        return cls(**{**values, "served_as": ServedAs(**values["served_as"])})


def measure_serving(
    model_dir: Path, int8_dir: Path | None, served_as: ServedAs, texts: Sequence[str], latency_samples: int
) -> ServingCost:
    """Load the model in a child process as the service would, predict `texts` in the service's request and batch
    sizes, then time `latency_samples` single-text requests."""
    request = _Request(str(model_dir), None if int8_dir is None else str(int8_dir), served_as, list(texts),
                       latency_samples)  # fmt: skip
    return measured_in_child("trainer.serving_cost", asdict(request), model_dir)


def measured_in_child(module: str, request: dict[str, Any], model_dir: Path) -> ServingCost:
    """The cost `python -m module` prints after reading `request` as JSON on its standard input."""
    try:
        done = subprocess.run([sys.executable, "-m", module], input=json.dumps(request), text=True,
                              capture_output=True, timeout=MEASURE_TIMEOUT_S, check=False)  # fmt: skip
    except subprocess.TimeoutExpired:
        raise TrainerError(f"measuring {model_dir} as served took over {MEASURE_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise TrainerError(f"measuring {model_dir} as served failed (exit code {done.returncode}): {last}")
    return ServingCost(**json.loads(done.stdout))


def single_text_latency(model: Served, texts: Sequence[str], samples: int) -> tuple[float, float]:
    """p50 and p99 in milliseconds of predicting one text at a time."""
    return request_latency(lambda i: model.probabilities([texts[i % len(texts)]] if texts else ["."]),
                           min(samples, max(1, len(texts))))  # fmt: skip


def request_latency(request: Callable[[int], object], samples: int) -> tuple[float, float]:
    """p50 and p99 in milliseconds of `request(i)` for i in range(samples), one at a time."""
    timings = []
    for i in range(samples):
        started = time.perf_counter()
        request(i)
        timings.append((time.perf_counter() - started) * 1000)
    return float(np.percentile(timings, 50)), float(np.percentile(timings, 99))


def peak_memory_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _measure(request: _Request) -> ServingCost:
    served_as, texts = request.served_as, request.texts
    int8_dir = None if request.int8_dir is None else Path(request.int8_dir)
    model = load_served(Path(request.model_dir), int8_dir, served_as.int8, served_as.batch_size, served_as.threads)
    for start in range(0, len(texts), served_as.max_batch_texts):
        predict(model, texts[start : start + served_as.max_batch_texts])
    p50, p99 = single_text_latency(model, texts, request.latency_samples)
    return ServingCost(p50, p99, peak_memory_mb(), len(texts))


if __name__ == "__main__":
    print(json.dumps(asdict(_measure(_Request.from_json(sys.stdin.read())))))
