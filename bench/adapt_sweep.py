"""Trainer settings across seeds: `bench/adapt.py`'s driftloop strategy and oracle, one run per (scenario, seed).

One run of `bench/adapt.py` is one draw: on these subsamples its gap and forgetting move by 1 to 3 points from
seed to seed (the subsample and the training order), as much as the targets themselves. Compare settings with
this: for every scenario and seed (the seed draws the subsample and seeds training, as in adapt.py) it runs each
named setting's stage chain (stage 0 fresh, then every later episode continued from the previous stage's adapter
with replay) and the oracle that setting gives (settings the oracle overrides, such as the learning rate, share
one oracle; max_epochs does not), in parallel worker processes, appends one JSON line per run to `--out` (runs
already there are not repeated, so a sweep resumes, a run it was killed in starts over, and new settings reuse
the oracles; SIGTERM stops the workers too) and prints, per setting, the mean and worst gap to its oracle and
forgetting over the seeds.

    .venv/bin/python bench/adapt_sweep.py --seeds 7 8 9 --setting default='{}' --setting slow='{"learning_rate": 5e-4}'

With a GPU (`--device cuda`) a run takes 1-2 minutes and a dozen run side by side; on 2 CPU cores one run of
one scenario takes 4-7 minutes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import shutil
import signal
import statistics
import sys
import time
from pathlib import Path
from typing import Any

# `python bench/adapt_sweep.py` puts bench/ first on sys.path, where bench/ingest.py would shadow the ingest package.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bench.adapt import FULL, Size, bench_settings, health_news, oracle_settings, row_of, run, sentiment  # noqa: E402
from trainer.metrics import matrix_forgetting  # noqa: E402
from trainer.settings import TrainerSettings  # noqa: E402

SCENARIOS = {"health_news": health_news, "sentiment_domains": sentiment}
Task = tuple[str, int, str, dict[str, Any], Size, Path]  # scenario, seed, setting (or "oracle"), changes, size, work


def run_task(task: Task) -> dict[str, Any]:
    import torch

    scenario, seed, name, changes, size, work = task
    settings = task_settings(task)
    torch.set_num_threads(settings.torch_threads)
    episodes = SCENARIOS[scenario](size, seed)
    out = work / f"{scenario}-{seed}-{name}"
    if name == "oracle":  # one oracle per distinct oracle settings (a setting like max_epochs changes it too)
        out = out.with_name(f"{out.name}-{digest(settings.model_dump(mode='json'))}")
    shutil.rmtree(out, ignore_errors=True)  # a pending run's directory is what a killed sweep left
    started = time.perf_counter()
    if name == "oracle":
        matrix = [row_of(run(settings, [row for rows in episodes for row in rows], [], None, out))]
    else:
        matrix, parent = [], None
        for stage, window in enumerate(episodes):
            history = [row for rows in episodes[:stage] for row in rows]
            candidate = run(settings, window, history, parent, out / f"stage{stage}")
            matrix.append(row_of(candidate))
            parent = candidate.adapter_dir
    return {"scenario": scenario, "seed": seed, "setting": name, "changes": changes,
            "settings": settings.model_dump(mode="json"), "matrix": matrix,
            "seconds": round(time.perf_counter() - started, 1)}  # fmt: skip


def task_settings(task: Task) -> TrainerSettings:
    """The settings a task trains with (the oracle's for the oracle)."""
    _, seed, name, changes, size, _ = task
    settings = bench_settings(size, seed, **changes)
    return oracle_settings(settings) if name == "oracle" else settings


def pending(tasks: list[Task], results: list[dict[str, Any]]) -> list[Task]:
    """The tasks no earlier result (nor an earlier task) runs with the same effective settings."""
    done = {run_key(r["scenario"], r["seed"], r["setting"], r.get("settings")) for r in results}
    left = []
    for task in tasks:
        key = run_key(*task[:3], task_settings(task).model_dump(mode="json"))
        if key not in done:
            done.add(key)
            left.append(task)
    return left


def digest(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]


def run_key(scenario: str, seed: int, name: str, settings: dict[str, Any] | None) -> str:
    """What makes two runs the same: scenario, seed, setting name and every effective setting (so a run made
    before a default changed is not taken for one with the new default)."""
    return json.dumps([scenario, seed, name, settings], sort_keys=True)


def read_results(path: Path) -> list[dict[str, Any]]:
    """The runs an earlier sweep appended to `path` (none if it does not exist)."""
    if not path.exists():
        return []
    results = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for result in results:
        result["matrix"] = [{int(episode): score for episode, score in row.items()} for row in result["matrix"]]
    return results


def summarise(results: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per scenario and setting: gap to the oracle on the newest episode and worst forgetting, in points. Each run is
    compared with the oracle trained on its scenario and seed with the settings the run's settings give the oracle."""
    oracles = {run_key(r["scenario"], r["seed"], "oracle", r.get("settings")): r["matrix"][0]
               for r in results if r["setting"] == "oracle"}  # fmt: skip
    per: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in results:
        if r["setting"] == "oracle" or r.get("settings") is None:
            continue
        its_oracle = oracle_settings(TrainerSettings(**r["settings"])).model_dump(mode="json")
        oracle = oracles.get(run_key(r["scenario"], r["seed"], "oracle", its_oracle))
        if oracle is None:
            continue
        newest = len(r["matrix"]) - 1
        gap = 100 * (oracle[newest] - r["matrix"][-1][newest])
        forgetting = 100 * max(matrix_forgetting(r["matrix"]).values())
        per.setdefault(r["scenario"], {}).setdefault(r["setting"], []).append((gap, forgetting))
    return {
        scenario: {
            name: {
                "seeds": len(pairs),
                "gap_mean": round(statistics.mean(p[0] for p in pairs), 2),
                "gap_worst": round(max(p[0] for p in pairs), 2),
                "forgetting_mean": round(statistics.mean(p[1] for p in pairs), 2),
                "forgetting_worst": round(max(p[1] for p in pairs), 2),
            }
            for name, pairs in settings.items()
        }
        for scenario, settings in per.items()
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append", help="default: both")
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="trainer settings changed from the defaults (repeatable; default: default='{}')",
    )
    parser.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    parser.add_argument(
        "--size",
        type=int,
        nargs=3,
        default=[FULL.train, FULL.holdout, FULL.epochs],
        metavar=("TRAIN", "HOLDOUT", "EPOCHS"),
        help="subsample per episode (default: adapt.py's)",
    )
    parser.add_argument("--workers", type=int, default=1, help="runs side by side")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads of each run")
    parser.add_argument("--work", type=Path, required=True, help="where the candidates go")
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per run (appended)")
    args = parser.parse_args(argv)
    settings = dict(item.split("=", 1) for item in args.setting or ["default={}"])
    size = Size(*args.size)
    tasks: list[Task] = []
    for scenario in args.scenario or sorted(SCENARIOS):
        for seed in args.seeds:
            common = {"device": args.device, "torch_threads": args.threads}
            for name, changes in settings.items():
                tasks.append((scenario, seed, "oracle", json.loads(changes) | common, size, args.work))
                tasks.append((scenario, seed, name, json.loads(changes) | common, size, args.work))
    results = read_results(args.out)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))  # the pool's exit stops the workers
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool:
        for result in pool.imap_unordered(run_task, pending(tasks, results)):
            results.append(result)
            with args.out.open("a") as out:
                out.write(json.dumps(result) + "\n")
            print(f"{result['scenario']} seed {result['seed']} {result['setting']}: {result['seconds']} s", flush=True)
    print(json.dumps(summarise(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
