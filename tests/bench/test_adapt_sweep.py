from __future__ import annotations

from typing import Any

from bench.adapt_sweep import summarise


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
