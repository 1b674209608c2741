"""The promotion gate: a pure function of two evaluations and the rules, returning the decision and its reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from common.scores import is_text_metric
from registry.bootstrap import PairedGain, paired_bootstrap, recall_per_class
from registry.errors import RegistryError
from registry.evaluation import Evaluation, HoldoutPredictions, answer_losses, holdout_score
from registry.settings import RegistrySettings
from registry.text_bootstrap import paired_perplexity_bootstrap, paired_text_bootstrap


@dataclass(frozen=True)
class Check:
    """One rule: its name, whether it passed, a sentence with the numbers, and the numbers."""

    name: str
    passed: bool
    reason: str
    numbers: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    checks: tuple[Check, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(check.reason for check in self.checks)

    def failures(self) -> tuple[str, ...]:
        return tuple(check.reason for check in self.checks if not check.passed)


def decide(candidate: Evaluation, production: Evaluation | None, rules: RegistrySettings) -> GateResult:
    """Candidate vs production: the newest episode must improve beyond the noise, no earlier episode may forget
    more than epsilon, every class keeps a recall floor (a classifier's: generated answers have no classes), and
    latency and memory stay within budget. With perplexity, the gain is the share by which the candidate's
    perplexity of the reference answers is lower than production's, and forgetting the share by which it rises."""
    if not candidate.episodes:
        raise RegistryError("the candidate's evaluation has no holdout episodes; the gate has nothing to compare")
    newest = candidate.newest_episode
    checks: list[Check] = []
    if production is None:
        checks.append(Check("improves", True, "No production model yet: the first candidate has nothing to beat."))
    else:
        _check_paired(candidate, production)
        checks.append(_improves(newest, candidate.episodes[newest], production.episodes[newest], rules))
        checks += [
            _forgets(e, candidate.episodes[e], production.episodes[e], rules)
            for e in sorted(candidate.episodes)
            if e != newest
        ]
    if rules.gate_metric in ("macro_f1", "accuracy"):
        checks.append(_recall_floor(candidate, rules))
    checks.append(_latency(candidate, rules))
    checks.append(_memory(candidate, rules))
    return GateResult(passed=all(check.passed for check in checks), checks=tuple(checks))


def _check_paired(candidate: Evaluation, production: Evaluation) -> None:
    for episode, rows in candidate.episodes.items():
        other = production.episodes.get(episode)
        if other is None or other.labels != rows.labels:
            raise RegistryError(
                f"episode {episode}: production was not evaluated on the candidate's holdout rows (same rows, "
                "same order); evaluate both models on the same holdouts"
            )


def _improves(
    episode: int, candidate: HoldoutPredictions, production: HoldoutPredictions, rules: RegistrySettings
) -> Check:
    gain = _paired_gain(candidate, production, rules)
    numbers: dict[str, Any] = {
        "episode": episode,
        "candidate": gain.candidate,
        "production": gain.production,
        "gain": gain.gain,
        "lower_bound": gain.lower_bound,
        "margin": rules.gate_margin,
        "rows": len(candidate.labels),
    }
    metric, pct = rules.gate_metric, round(100 * rules.gate_bootstrap_confidence)
    scores = f"{metric} {gain.candidate:.4f} vs production {gain.production:.4f} on episode {episode}'s holdout"
    if metric == "perplexity":
        scores += " (the gain is the share by which perplexity falls)"
    if len(candidate.labels) < rules.gate_min_holdout_rows:
        reason = (
            f"Too few held-out rows to judge: {scores} has {len(candidate.labels)} rows, fewer than "
            f"registry.gate_min_holdout_rows ({rules.gate_min_holdout_rows}). Held out are audit labels and full "
            "records, never corrections (production is wrong on each by construction): raise audit.sample_rate or "
            "wait for more audit labels, then `driftloop train`."
        )
        return Check("improves", False, reason, numbers)
    if gain.gain < rules.gate_margin:
        reason = f"Does not improve enough: {scores}, a gain of {gain.gain:+.4f}, below the margin {rules.gate_margin}."
        return Check("improves", False, reason, numbers)
    bound = f"the {pct}% paired-bootstrap lower bound of the gain is {gain.lower_bound:+.4f}"
    if gain.lower_bound <= 0.0:
        reason = f"Gain inside the noise: {scores} (gain {gain.gain:+.4f}), but {bound} ({len(candidate.labels)} rows)."
        return Check("improves", False, reason, numbers)
    return Check("improves", True, f"Improves: {scores}, gain {gain.gain:+.4f}; {bound}.", numbers)


def _paired_gain(candidate: HoldoutPredictions, production: HoldoutPredictions, rules: RegistrySettings) -> PairedGain:
    """The gain of `rules.gate_metric` with its bootstrap lower bound; labels are the reference answers of a text
    metric."""
    metric = rules.gate_metric
    args = (rules.gate_bootstrap_samples, rules.gate_bootstrap_confidence, rules.gate_seed)
    if metric == "perplexity":
        (mine, tokens), (theirs, _) = answer_losses(candidate), answer_losses(production)
        return paired_perplexity_bootstrap(mine, theirs, tokens, *args)
    if is_text_metric(metric):
        return paired_text_bootstrap(candidate.labels, candidate.predicted, production.predicted, metric,
                                     *args).scaled(0.01)  # fmt: skip
    return paired_bootstrap(candidate.labels, candidate.predicted, production.predicted, metric, *args)


def _forgets(
    episode: int, candidate: HoldoutPredictions, production: HoldoutPredictions, rules: RegistrySettings
) -> Check:
    after, before = holdout_score(candidate, rules.gate_metric), holdout_score(production, rules.gate_metric)
    if rules.gate_metric == "perplexity":  # lower is better: the share by which it rises is lost
        loss, change = after / before - 1.0, f"{after / before - 1.0:+.2%}"
    else:
        loss, change = before - after, f"{after - before:+.4f}"
    numbers = {"episode": episode, "candidate": after, "production": before, "loss": loss}
    text = f"{rules.gate_metric} on earlier episode {episode} goes from {before:.4f} to {after:.4f} ({change})"
    name = f"forgetting:{episode}"
    if loss > rules.gate_epsilon:
        return Check(name, False, f"Forgets: {text}, more than epsilon {rules.gate_epsilon}.", numbers)
    return Check(name, True, f"Keeps episode {episode}: {text}, within {rules.gate_epsilon}.", numbers)


def _recall_floor(candidate: Evaluation, rules: RegistrySettings) -> Check:
    labels = [label for rows in candidate.episodes.values() for label in rows.labels]
    predicted = [label for rows in candidate.episodes.values() for label in rows.predicted]
    recalls = {
        label: recall
        for label, (recall, support) in recall_per_class(labels, predicted).items()
        if support >= rules.gate_recall_min_support
    }
    low = {label: recall for label, recall in recalls.items() if recall < rules.gate_recall_floor}
    numbers: dict[str, Any] = {"floor": rules.gate_recall_floor, "recall": recalls}
    if low:
        listed = ", ".join(f"{label} {recall:.3f}" for label, recall in sorted(low.items()))
        reason = f"Class recall below the floor {rules.gate_recall_floor}: {listed}."
        return Check("recall_floor", False, reason, numbers)
    lowest = min(recalls.items(), key=lambda item: item[1], default=None)
    detail = f"; the lowest is {lowest[0]} at {lowest[1]:.3f}" if lowest else ""
    reason = f"Every class ({len(recalls)}) has recall at or above {rules.gate_recall_floor}{detail}."
    return Check("recall_floor", True, reason, numbers)


def _latency(candidate: Evaluation, rules: RegistrySettings) -> Check:
    p99, budget = candidate.latency_ms_p99, rules.gate_latency_p99_ms
    numbers = {"p99_ms": p99, "budget_ms": budget}
    if p99 > budget:
        reason = f"Too slow: p99 latency {p99:.1f} ms is over the budget {budget:.0f} ms."
        return Check("latency", False, reason, numbers)
    return Check("latency", True, f"p99 latency {p99:.1f} ms is within the budget {budget:.0f} ms.", numbers)


def _memory(candidate: Evaluation, rules: RegistrySettings) -> Check:
    peak, budget = candidate.peak_memory_mb, rules.gate_memory_mb
    numbers = {"peak_mb": peak, "budget_mb": budget}
    if peak > budget:
        reason = f"Too big: peak memory {peak:.0f} MiB is over the budget {budget:.0f} MiB."
        return Check("memory", False, reason, numbers)
    return Check("memory", True, f"Peak memory {peak:.0f} MiB is within the budget {budget:.0f} MiB.", numbers)
