"""What a generative model costs as the service runs it: the latency of one prompt a request answered with exactly
`new_tokens` tokens, and peak memory, measured in a fresh process that loads the model as the service does (its
quantized export or not, its thread count), as `trainer.serving_cost` measures a classifier and for the same reason:
the training process's memory still holds the training state. Importing this module does not import torch; the
child does.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from trainer.causal_served import Generator, load_generator
from trainer.errors import TrainerError
from trainer.serving_cost import ServingCost, measured_in_child, peak_memory_mb, request_latency


@dataclass(frozen=True)
class _Request:
    model_dir: str
    int8_dir: str | None
    int8: bool
    threads: int
    prompts: list[str]
    new_tokens: int
    samples: int


def measure_generation_cost(
    model_dir: Path,
    int8_dir: Path | None,
    int8: bool,
    threads: int,
    prompts: Sequence[str],
    new_tokens: int = 32,
    samples: int = 20,
) -> ServingCost:
    """Load the causal LM in a child process as the service would (`trainer.causal_served.load_generator`), then
    time `samples` requests of one prompt each (`prompts` in turn), every answer forced to `new_tokens` tokens;
    `texts` of the result counts the timed requests."""
    if not prompts:
        raise TrainerError(f"no prompts to time {model_dir} with; pass at least one (the holdout's prompts)")
    request = _Request(
        str(model_dir), None if int8_dir is None else str(int8_dir), int8, threads, list(prompts), new_tokens, samples
    )
    return measured_in_child("trainer.generation_cost", asdict(request), model_dir)


def forced_latency(generator: Generator, prompts: Sequence[str], new_tokens: int, samples: int) -> tuple[float, float]:
    """p50 and p99 in milliseconds of answering one prompt with exactly `new_tokens` tokens, after one untimed
    answer (the first pays for allocations every later one reuses)."""
    generator.generate(prompts[:1], new_tokens, min_new_tokens=new_tokens)
    return request_latency(
        lambda i: generator.generate([prompts[i % len(prompts)]], new_tokens, min_new_tokens=new_tokens), samples
    )


def _measure(request: _Request) -> ServingCost:
    int8_dir = None if request.int8_dir is None else Path(request.int8_dir)
    generator = load_generator(Path(request.model_dir), int8_dir, request.int8, request.threads)
    p50, p99 = forced_latency(generator, request.prompts, request.new_tokens, request.samples)
    return ServingCost(p50, p99, peak_memory_mb(), request.samples)


if __name__ == "__main__":
    print(json.dumps(asdict(_measure(_Request(**json.loads(sys.stdin.read()))))))
