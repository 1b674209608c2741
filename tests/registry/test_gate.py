"""The gate's decisions and the numbers in its reasons."""

from __future__ import annotations

import math

import pytest

from common.scores import metric_value
from registry.bootstrap import paired_bootstrap
from registry.errors import RegistryError
from registry.evaluation import Evaluation, HoldoutPredictions
from registry.gate import decide
from registry.settings import RegistrySettings
from tests.registry.conftest import evaluation, holdout

RULES = RegistrySettings(gate_bootstrap_samples=500, gate_margin=0.01, gate_epsilon=0.02)


def failed(result_reasons: tuple[str, ...], start: str) -> str:
    return next(reason for reason in result_reasons if reason.startswith(start))


def test_a_clear_improvement_that_keeps_earlier_episodes_passes() -> None:
    result = decide(evaluation({1: 0.90, 2: 0.85}), evaluation({1: 0.90, 2: 0.60}), RULES)
    assert result.passed, result.failures()
    improves = failed(result.reasons, "Improves")
    assert "macro_f1" in improves
    assert "episode 2" in improves
    assert "lower bound" in improves
    assert any(reason.startswith("Keeps episode 1") for reason in result.reasons)


def test_forgetting_an_earlier_episode_fails_with_the_numbers() -> None:
    result = decide(evaluation({1: 0.70, 2: 0.90}), evaluation({1: 0.90, 2: 0.60}), RULES)
    assert not result.passed
    (reason,) = result.failures()
    assert reason.startswith("Forgets: macro_f1 on earlier episode 1 goes from 0.8995 to 0.6956 (-0.2039)")
    assert "more than epsilon 0.02" in reason


def test_a_gain_inside_the_noise_is_not_a_gain() -> None:
    result = decide(evaluation({1: 0.64}, rows=40), evaluation({1: 0.60}, rows=40), RULES)
    assert not result.passed
    (reason,) = result.failures()
    assert reason.startswith("Gain inside the noise")
    assert "lower bound" in reason
    assert "40 rows" in reason


def test_too_few_held_out_rows_to_judge_fails_and_says_so() -> None:
    (reason,) = decide(evaluation({1: 1.0}, rows=20), evaluation({1: 0.2}, rows=20), RULES).failures()
    assert reason.startswith("Too few held-out rows to judge: macro_f1 1.0000 vs production")
    assert "has 20 rows, fewer than registry.gate_min_holdout_rows (30)" in reason
    assert "raise audit.sample_rate" in reason


def test_a_gain_below_the_margin_fails() -> None:
    rules = RULES.model_copy(update={"gate_margin": 0.2})
    (reason,) = decide(evaluation({1: 0.9}), evaluation({1: 0.8}), rules).failures()
    assert reason.startswith("Does not improve enough")
    assert "below the margin 0.2" in reason


def test_over_the_latency_and_memory_budgets_fails_on_both() -> None:
    candidate = evaluation({1: 0.9}, latency_ms=900.0, memory_mb=4096.0)
    failures = decide(candidate, evaluation({1: 0.5}), RULES).failures()
    assert failures == (
        "Too slow: p99 latency 900.0 ms is over the budget 500 ms.",
        "Too big: peak memory 4096 MiB is over the budget 2048 MiB.",
    )


def test_a_class_below_the_recall_floor_fails() -> None:
    rows = holdout(100, 1.0, seed=1)
    always_pos = Evaluation({1: rows.__class__(rows.labels, ("pos",) * 100)}, 10.0, 100.0)
    (reason,) = decide(always_pos, None, RULES).failures()
    assert reason == "Class recall below the floor 0.2: neg 0.000."


def test_the_first_model_has_nothing_to_beat() -> None:
    result = decide(evaluation({1: 0.8}), None, RULES)
    assert result.passed
    assert result.reasons[0].startswith("No production model yet")


def test_evaluations_on_different_rows_cannot_be_paired() -> None:
    other = Evaluation({1: holdout(200, 0.5, seed=99)}, 10.0, 100.0)
    with pytest.raises(RegistryError, match="same rows, same order"):
        decide(evaluation({1: 0.9}), other, RULES)


def test_the_bootstrap_is_deterministic_and_brackets_the_gain() -> None:
    rows = holdout(300, 0.8, seed=3)
    other = holdout(300, 0.7, seed=3)
    first = paired_bootstrap(rows.labels, rows.predicted, other.predicted, "macro_f1", 300, 0.95, seed=7)
    again = paired_bootstrap(rows.labels, rows.predicted, other.predicted, "macro_f1", 300, 0.95, seed=7)
    assert first == again
    assert first.lower_bound < first.gain
    assert first.gain == pytest.approx(metric_value(rows.labels, rows.predicted, "macro_f1") - metric_value(
        other.labels, other.predicted, "macro_f1"))  # fmt: skip


REFERENCES = [f"a small domesticated animal kept as pet number {i}" for i in range(40)]
CLOSE = [f"a small tame animal kept as a pet number {i}" for i in range(40)]
OFF = [f"a large building in a city number {i}" for i in range(40)]


def answers(episodes: dict[int, list[str]]) -> Evaluation:
    """A generative model's answers to 40 prompts per episode, the references as the labels."""
    return Evaluation({e: HoldoutPredictions(tuple(REFERENCES), tuple(a)) for e, a in episodes.items()}, 300.0, 900.0)


def test_generated_answers_are_gated_on_chrf_of_the_same_prompts_without_a_recall_floor() -> None:
    rules = RULES.model_copy(update={"gate_metric": "chrf"})
    result = decide(answers({1: CLOSE, 2: CLOSE}), answers({1: CLOSE, 2: OFF}), rules)
    assert result.passed, result.failures()
    assert [check.name for check in result.checks] == ["improves", "forgetting:1", "latency", "memory"]
    improves = result.checks[0].numbers
    assert improves["candidate"] == pytest.approx(metric_value(REFERENCES, CLOSE, "chrf"))
    assert 0 < improves["lower_bound"] <= improves["gain"] < 1  # chrF / 100, the scale of the margin
    forgets = decide(answers({1: OFF, 2: CLOSE}), answers({1: CLOSE, 2: OFF}), rules)
    assert forgets.failures()[0].startswith("Forgets: chrf on earlier episode 1 goes from")


def losses(episodes: dict[int, float], rows: int = 40) -> Evaluation:
    """A generative model whose loss per answer token is `episodes[e]` nats on average over 10-token answers, each
    answer off by its own amount (which differs between models)."""

    def nll(nats: float) -> tuple[float, ...]:
        jitter = [0.2 * ((i * 3 + round(10 * nats)) % 7 - 3) for i in range(rows)]
        return tuple(10 * (nats + j - sum(jitter) / rows) for j in jitter)

    return Evaluation({e: HoldoutPredictions(tuple(REFERENCES[:rows]), tuple(CLOSE[:rows]), nll(nats), (10,) * rows)
                       for e, nats in episodes.items()}, 300.0, 900.0)  # fmt: skip


def test_perplexity_gates_on_the_share_it_falls_and_forgets_on_the_share_it_rises() -> None:
    rules = RULES.model_copy(update={"gate_metric": "perplexity"})
    result = decide(losses({1: 3.0, 2: 3.0}), losses({1: 3.0, 2: 3.5}), rules)
    assert result.passed, result.failures()
    improves = result.checks[0].numbers
    assert improves["candidate"] == pytest.approx(math.exp(3.0))
    assert improves["production"] == pytest.approx(math.exp(3.5))
    assert improves["gain"] == pytest.approx(1 - math.exp(-0.5))
    assert 0 < improves["lower_bound"] < improves["gain"]
    assert "the share by which perplexity falls" in result.reasons[0]
    (reason,) = decide(losses({1: 3.1, 2: 3.0}), losses({1: 3.0, 2: 3.5}), rules).failures()
    assert reason.startswith(f"Forgets: perplexity on earlier episode 1 goes from {math.exp(3.0):.4f} to ")
    assert f"(+{math.exp(0.1) - 1:.2%})" in reason
    with pytest.raises(RegistryError, match="gate_metric=perplexity needs the model's losses"):
        decide(evaluation({1: 0.9}), evaluation({1: 0.5}), rules)
