"""Serving benchmark of the generation task: SmolLM2-135M-Instruct as the service runs it (`trainer.causal_served`),
fp32 in transformers (the baseline) against the quantized export in ONNX Runtime (`trainer.causal_export`: a graph
of ONNX Runtime's fused operators with 8-bit weights; `registry.int8`, reported as "int8"), on 1 and 2 CPU threads.

Latency: one prompt a request answered with exactly 32 new tokens, each measurement in a fresh process
(`trainer.generation_cost`); p50/p99 over `samples` requests, then the median over `repeats` processes, fp32 and the
export taking turns so a neighbour's load falls on both; peak memory is the process's VmHWM. The load average beside
the figures says how busy the machine was: the service shares its cores.
Quality: the export against fp32 on WordNet gloss prompts (a seeded sample of definitions of at most 20 words), the
perplexity of the reference glosses (export over fp32, the export's computed token by token as it decodes) and the
chrF of greedy answers (fp32 minus export, in points).
The base model by default, not a fine-tune: latency does not depend on the weights.

Last line: {"fp32": {threads: {"p50_ms", "p99_ms", "rss_mb"}}, "int8": {...}, "int8_speedup_p99": {threads: ratio},
"int8_perplexity_ratio", "int8_chrf_loss_pts", "quality": {...}, "new_tokens", "export_seconds",
"load_average": [before, after]}.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # bench/ingest.py would shadow the package
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from bench.generate import MAX_WORDS, int8_quality  # noqa: E402
from ingest.glosses import Gloss, wordnet_glosses  # noqa: E402
from trainer.causal_base import packaged_smollm2  # noqa: E402
from trainer.causal_export import export_decoder  # noqa: E402
from trainer.generation_cost import measure_generation_cost  # noqa: E402

THREADS = (1, 2)


@dataclass(frozen=True)
class Sizes:
    glosses: int
    new_tokens: int
    samples: int
    repeats: int


FULL = Sizes(glosses=60, new_tokens=32, samples=20, repeats=3)
QUICK = Sizes(glosses=6, new_tokens=8, samples=3, repeats=1)


def sample_glosses(count: int, seed: int) -> list[Gloss]:
    pool = [g for g in wordnet_glosses() if len(g.definition.split()) <= MAX_WORDS]
    return random.Random(seed).sample(pool, count)


def latency(
    model_dir: Path, export_dir: Path, int8: bool, threads: int, prompts: Sequence[str], sizes: Sizes
) -> dict[str, float]:
    """p50, p99 and peak memory of one fresh process serving the model."""
    cost = measure_generation_cost(model_dir, export_dir, int8, threads, prompts, sizes.new_tokens, sizes.samples)
    return {"p50_ms": cost.latency_ms_p50, "p99_ms": cost.latency_ms_p99, "rss_mb": cost.peak_memory_mb}


def run(model_dir: Path, sizes: Sizes, seed: int, work: Path) -> dict[str, Any]:
    started = time.perf_counter()
    export_dir = export_decoder(model_dir, work / "int8")
    export_seconds = time.perf_counter() - started
    glosses = sample_glosses(sizes.glosses, seed)
    prompts = [g.prompt for g in glosses]
    load_before = os.getloadavg()[0]
    runs: dict[str, dict[int, list[dict[str, float]]]] = {"fp32": {}, "int8": {}}
    for _ in range(sizes.repeats):  # fp32 and the export in turn, so a neighbour's burst does not fall on one form only
        for threads in THREADS:
            for form, int8 in (("fp32", False), ("int8", True)):
                measured = latency(model_dir, export_dir, int8, threads, prompts, sizes)
                runs[form].setdefault(threads, []).append(measured)
    figures = {form: {str(threads): {key: round(statistics.median(r[key] for r in repeats), 1) for key in repeats[0]}
                      for threads, repeats in by_threads.items()} for form, by_threads in runs.items()}  # fmt: skip
    quality = int8_quality(model_dir, export_dir, glosses, sizes.new_tokens, threads=2)
    return {
        **figures,
        "int8_speedup_p99": {
            str(t): round(figures["fp32"][str(t)]["p99_ms"] / figures["int8"][str(t)]["p99_ms"], 2) for t in THREADS
        },
        "int8_perplexity_ratio": quality["int8_perplexity_ratio"],
        "int8_chrf_loss_pts": quality["int8_chrf_loss_pts"],
        "quality": quality,
        "new_tokens": sizes.new_tokens,
        "export_seconds": round(export_seconds, 1),
        "load_average": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few glosses, 8 tokens, one process each: a smoke run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", type=Path, help="a merged causal-LM directory (default: the packaged SmolLM2)")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        report = run(args.model or packaged_smollm2(), QUICK if args.quick else FULL, args.seed, Path(work))
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    for threads in THREADS:
        fp32, int8 = report["fp32"][str(threads)], report["int8"][str(threads)]
        print(f"{threads} thread(s), {report['new_tokens']} new tokens: fp32 p50 {fp32['p50_ms']:.0f} ms, p99 "
              f"{fp32['p99_ms']:.0f} ms, {fp32['rss_mb']:.0f} MB; export p50 {int8['p50_ms']:.0f} ms, p99 "
              f"{int8['p99_ms']:.0f} ms, {int8['rss_mb']:.0f} MB; export speedup at p99 "
              f"{report['int8_speedup_p99'][str(threads)]:.2f}x")  # fmt: skip
    print(f"export perplexity ratio {report['int8_perplexity_ratio']:.3f}, "
          f"chrF loss {report['int8_chrf_loss_pts']:.2f}")  # fmt: skip
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
