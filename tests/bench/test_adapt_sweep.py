from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.adapt import QUICK
from bench.adapt_sweep import Task, pending, read_results, summarise, task_settings


def run(scenario: str, seed: int, setting: str, matrix: list[dict[int, float]]) -> dict[str, Any]:
    return {"scenario": scenario, "seed": seed, "setting": setting, "matrix": matrix}


def test_gap_and_forgetting_are_averaged_and_worst_cased_over_seeds() -> None:
    results = [
        run("s", 1, "oracle", [{0: 0.80, 1: 0.90}]),
        run("s", 2, "oracle", [{0: 0.80, 1: 0.80}]),
        run("s", 1, "a", [{0: 0.80}, {0: 0.78, 1: 0.88}]),  # gap 2, forgetting 2
        run("s", 2, "a", [{0: 0.70}, {0: 0.72, 1: 0.84}]),  # gap -4, forgetting -2
        run("s", 3, "a", [{0: 0.70}, {0: 0.60, 1: 0.50}]),  # no oracle for seed 3: left out
    ]

    assert summarise(results) == {
        "s": {"a": {"seeds": 2, "gap_mean": -1.0, "gap_worst": 2.0, "forgetting_mean": 0.0, "forgetting_worst": 2.0}}
    }


def test_a_sweep_skips_the_runs_its_output_already_holds_with_the_same_effective_settings(tmp_path: Path) -> None:
    work = tmp_path / "work"
    oracle: Task = ("sentiment_domains", 7, "oracle", {}, QUICK, work)
    share: Task = ("sentiment_domains", 7, "share", {"new_window_share": 0.3}, QUICK, work)
    default: Task = ("sentiment_domains", 7, "default", {}, QUICK, work)

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
    assert pending([oracle, share, default], results) == [share, default]
    assert read_results(tmp_path / "none.jsonl") == []
