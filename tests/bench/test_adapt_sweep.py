from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bench.adapt_sweep
from bench.adapt import QUICK, bench_settings, oracle_settings
from bench.adapt_sweep import Task, pending, read_results, run_task, summarise, task_settings


def run(seed: int, setting: str, matrix: list[dict[int, float]], **changes: Any) -> dict[str, Any]:
    settings = bench_settings(QUICK, seed, **changes)
    if setting == "oracle":
        settings = oracle_settings(settings)
    return {
        "scenario": "s",
        "seed": seed,
        "setting": setting,
        "matrix": matrix,
        "settings": settings.model_dump(mode="json"),
    }


def test_gap_and_forgetting_are_averaged_and_worst_cased_over_seeds() -> None:
    results = [
        run(1, "oracle", [{0: 0.80, 1: 0.90}]),
        run(2, "oracle", [{0: 0.80, 1: 0.80}]),
        run(1, "a", [{0: 0.80}, {0: 0.78, 1: 0.88}]),  # gap 2, forgetting 2
        run(2, "a", [{0: 0.70}, {0: 0.72, 1: 0.84}]),  # gap -4, forgetting -2
        run(3, "a", [{0: 0.70}, {0: 0.60, 1: 0.50}]),  # no oracle for seed 3: left out
    ]

    assert summarise(results) == {
        "s": {"a": {"seeds": 2, "gap_mean": -1.0, "gap_worst": 2.0, "forgetting_mean": 0.0, "forgetting_worst": 2.0}}
    }


def test_a_setting_is_compared_with_the_oracle_its_settings_give() -> None:
    results = [
        run(1, "oracle", [{0: 0.80, 1: 0.90}]),
        run(1, "oracle", [{0: 0.80, 1: 0.95}], max_epochs=5),
        run(1, "longer", [{0: 0.80}, {0: 0.80, 1: 0.90}], max_epochs=5),  # gap 5 to the 5-epoch oracle
        run(1, "faster", [{0: 0.80}, {0: 0.80, 1: 0.90}], learning_rate=1e-3),  # the oracle's rate is its own: gap 0
        run(1, "wider", [{0: 0.80}, {0: 0.80, 1: 0.85}], lora_r=16),  # a full fine-tune has no rank: gap 5
    ]

    summary = summarise(results)["s"]

    assert [summary[name]["gap_mean"] for name in ("longer", "faster", "wider")] == [5.0, 0.0, 5.0]


def test_a_sweep_skips_the_runs_its_output_already_holds_with_the_same_effective_settings(tmp_path: Path) -> None:
    work = tmp_path / "work"
    oracle: Task = ("sentiment_domains", 7, "oracle", {}, QUICK, work)
    share: Task = ("sentiment_domains", 7, "share", {"new_window_share": 0.3}, QUICK, work)
    default: Task = ("sentiment_domains", 7, "default", {}, QUICK, work)
    same_oracle: Task = ("sentiment_domains", 7, "oracle", {"learning_rate": 1e-3}, QUICK, work)  # overridden
    longer_oracle: Task = ("sentiment_domains", 7, "oracle", {"max_epochs": 5}, QUICK, work)

    def line(task: Task, matrix: list[dict[str, float]], settings: dict[str, Any] | None) -> dict[str, Any]:
        return {"scenario": task[0], "seed": task[1], "setting": task[2], "matrix": matrix, "settings": settings}

    lines = [
        line(oracle, [{"0": 0.8}], task_settings(oracle).model_dump(mode="json")),
        # recorded before results held their settings: what its defaults were is unknown, so it runs again
        line(default, [{"0": 0.8}], None),
        # recorded with another value of the setting
        line(share, [{"0": 0.7}], task_settings(share).model_dump(mode="json") | {"new_window_share": 0.4}),
    ]
    out = tmp_path / "sweep.jsonl"
    out.write_text("".join(json.dumps(entry) + "\n" for entry in lines))

    results = read_results(out)

    assert results[0]["matrix"] == [{0: 0.8}]
    assert pending([oracle, share, default, same_oracle, longer_oracle, longer_oracle], results) == [
        share,
        default,
        longer_oracle,
    ]
    assert read_results(tmp_path / "none.jsonl") == []


def test_a_run_starts_over_where_a_killed_sweep_left_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "s-7-a" / "stage0"
    stale.mkdir(parents=True)
    (stale / "candidate.json").write_text("{}")
    stages: list[tuple[Path, bool]] = []

    def train(settings: object, window: object, history: object, parent: object, out: Path) -> SimpleNamespace:
        stages.append((out, out.exists()))
        out.mkdir(parents=True)
        return SimpleNamespace(adapter_dir=out, stage=len(stages) - 1)

    monkeypatch.setattr(bench.adapt_sweep, "SCENARIOS", {"s": lambda size, seed: [["e0"], ["e1"]]})
    monkeypatch.setattr(bench.adapt_sweep, "run", train)
    monkeypatch.setattr(bench.adapt_sweep, "row_of", lambda candidate: {candidate.stage: 0.5})

    result = run_task(("s", 7, "a", {"torch_threads": 1}, QUICK, tmp_path))

    assert stages == [(stale, False), (tmp_path / "s-7-a" / "stage1", False)]
    assert result["matrix"] == [{0: 0.5}, {1: 0.5}]
