"""The gate's memory budget on long texts: measured as the service runs the model, against the figure the gate read
before (the training process's own peak, which still holds the training state).

MiniLM-L6 from the package is fine-tuned by driftloop's own trainer on texts of 1,000 characters (health tweets
joined in order) with 256-token windows; the candidate's peak memory in its training process is set beside a fresh
process predicting the holdout texts as the service does (`trainer.serving_cost`, batches of `predict_batch_size`
and of 64 windows). The guide's budget is 2 GB (`registry.gate_memory_mb` = 2048).

    python bench/gate_memory.py [--quick]

The last line is JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

# `python bench/gate_memory.py` puts bench/ first on sys.path, where bench/ingest.py would shadow the ingest package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from ingest.datasets import health_tweets  # noqa: E402
from registry.settings import RegistrySettings  # noqa: E402
from trainer.data import Row, Split, select_rows  # noqa: E402
from trainer.job import Job  # noqa: E402
from trainer.pipeline import run_job  # noqa: E402
from trainer.serving_cost import ServedAs, measure_serving  # noqa: E402
from trainer.settings import TrainerSettings  # noqa: E402

TEXT_CHARS = 1_000


def long_texts(count: int) -> list[Row]:
    """`count` rows of 1,000 characters, each the tweets of one source joined in order (its label)."""
    joined: dict[str, str] = {}
    rows: list[Row] = []
    for tweet in health_tweets():
        text = joined.get(tweet.label, "") + tweet.text + " "
        if len(text) < TEXT_CHARS:
            joined[tweet.label] = text
            continue
        joined[tweet.label] = ""
        split: Split = "holdout" if len(rows) % 4 == 0 else "train"
        rows.append(Row(f"long-{len(rows)}", text[:TEXT_CHARS], tweet.label, 0, split))
        if len(rows) == count:
            break
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="120 texts instead of 480")
    args = parser.parse_args(argv)
    rows = long_texts(120 if args.quick else 480)
    serving = RegistrySettings()
    settings = TrainerSettings(max_length=256, stride=64, max_epochs=1, torch_threads=2, latency_samples=20)
    with tempfile.TemporaryDirectory(prefix="driftloop-gate-memory-") as tmp:
        data = select_rows(rows, [], settings)
        job = Job(settings, data, settings.base_model_path(), None, Path(tmp) / "run")
        candidate = run_job(job, lambda event: None, lambda: False)
        holdout = [row.text for row in data.holdout]
        served = {}
        for batch in (serving.predict_batch_size, 64):
            as_served = ServedAs(False, batch, serving.max_batch_texts, serving.torch_threads)
            served[batch] = measure_serving(candidate.model_dir, None, as_served, holdout, settings.latency_samples)
    in_training = candidate.report.peak_memory_mb
    print(f"{len(rows)} texts of {TEXT_CHARS} characters, 256-token windows (stride 64), MiniLM-L6, fp32")
    print(f"peak memory read in the training process (the gate before):  {in_training:7.0f} MiB")
    for batch, cost in served.items():
        print(f"peak memory as served, batches of {batch:2d} windows:            {cost.peak_memory_mb:7.0f} MiB "
              f"(x{cost.peak_memory_mb / in_training:.2f}; p50 {cost.latency_ms_p50:.0f} ms, "
              f"p99 {cost.latency_ms_p99:.0f} ms a text)")  # fmt: skip
    print(json.dumps({
        "texts": len(rows),
        "training_process_mb": round(in_training),
        "served_mb": {str(batch): round(cost.peak_memory_mb) for batch, cost in served.items()},
        "served_over_training": round(served[serving.predict_batch_size].peak_memory_mb / in_training, 3),
        "p99_ms": round(served[serving.predict_batch_size].latency_ms_p99, 1),
        "budget_mb": serving.gate_memory_mb,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
