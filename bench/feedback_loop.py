"""Feedback-loop benchmark: the loop under the feedback people really send, on two real shifting streams.

Scenarios: health_news (outlet of a health-news tweet; early 2013 → late 2014 to mid 2015, new topics and outlets)
and sentiment_domains (positive/negative; movie-review snippets → tweets). Per scenario, from seeded samples that
never share a row: `train` old rows teach the stage-0 model (LoRA, driftloop's trainer); that model then serves a
stream of `served_old` old rows followed by `served_new` new ones (the shift); `evaluation` rows of each period
measure accuracy afterwards.

Regimes, the feedback sent for the served stream:
- full: every served row labelled (a record with its text: kind `label`, split by hash);
- corrections: users correct 30% of the wrong answers and confirm 5% of the right ones; 3% is audited;
- audit_only: the 3% audit sample, nothing else.
Detection: the served stream goes through drift's monitor as the daemon feeds it on `drift.stream = served` (each
row's label: an audit label, else a correction's, else the prediction; the calibrated confidence): whether and
how many served rows after the shift it fired, events after the shift, events before it (false alarms).
Update: driftloop continues the stage-0 adapter on the new period's feedback, split as ingest splits it (audits
held out, corrections and confirmations trained on), plus its replay of the stage-0 rows; the oracle is the same
recipe on every new served row with its true label, which is the `full` regime's update (so its gap is 0). The
same-count reference is that recipe on a random draw of those rows, as many as the corrections regime trains on: the
gap to the oracle splits into what the label count costs (oracle − same count) and what users' choice of rows costs
(`gap_to_same_count_pts`, same count − driftloop; negative when corrections teach more than random labels).
Accuracy on the evaluation rows of each period: gain over no-update on the new period, gap to the oracle,
forgetting of the old period (no-update minus driftloop).
Estimate error: |mean calibrated confidence − accuracy| on the stationary stretches, the stage-0 model on the old
served rows and the updated model on the new evaluation rows; the larger of the two, in points.
Service figures (`bench/serve.py`'s measure): the prediction log's p99 overhead and the INT8 figures.

Last line: {"scenarios": {NAME: {REGIME: {"detected", "delay_rows", "events_per_shift", "false_alarms", "gain_pts",
"gap_to_oracle_pts", "forgetting_pts", "estimate_error_pts"}}}, "log_overhead_ratio", "int8_speedup",
"int8_rss_ratio"}; the corrections regime also has "gap_to_same_count_pts".
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)  # bench/ingest.py would shadow the package

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.adapt import Size, bench_settings, log, run  # noqa: E402
from bench.serve import measure as measure_service  # noqa: E402
from daemon.demo.users import CONFIRM_RIGHT, CORRECT_WRONG  # noqa: E402
from drift.monitor import DriftMonitor  # noqa: E402
from drift.rows import FeedbackRows  # noqa: E402
from drift.settings import DriftSettings  # noqa: E402
from ingest.datasets import LabelledText, health_tweets, sentiment_domains  # noqa: E402
from ingest.settings import IngestSettings  # noqa: E402
from trainer.data import Row, Split  # noqa: E402
from trainer.predict import load_classifier  # noqa: E402
from trainer.results import Candidate  # noqa: E402
from trainer.served import predict  # noqa: E402
from trainer.settings import TrainerSettings  # noqa: E402

AUDIT_RATE = 0.03
REGIMES = ("full", "corrections", "audit_only")  # `full` first: its update is the oracle
HOLDOUT_FRACTION = IngestSettings().holdout_fraction  # for `label` rows, as the store splits them


@dataclass(frozen=True)
class Sizes:
    train: int
    served_old: int
    served_new: int
    evaluation: int
    epochs: int
    warmup_rows: int
    window_rows: int


FULL = Sizes(train=600, served_old=2_000, served_new=2_000, evaluation=1_000, epochs=2, warmup_rows=1_000,
             window_rows=500)  # fmt: skip
QUICK = Sizes(train=150, served_old=700, served_new=500, evaluation=200, epochs=1, warmup_rows=300, window_rows=200)


@dataclass(frozen=True)
class Periods:
    train: list[LabelledText]
    served: list[LabelledText]  # old then new
    shift: int  # index of the first new served row
    eval_old: list[LabelledText]
    eval_new: list[LabelledText]


def periods(items: Sequence[LabelledText], old: set[str], new: set[str], sizes: Sizes, seed: int) -> Periods:
    """Disjoint seeded samples of each period, the served ones in time order."""
    rng = random.Random(seed)
    first = [item for item in items if item.group in old]
    second = [item for item in items if item.group in new]
    picked_old = rng.sample(first, sizes.train + sizes.served_old + sizes.evaluation)
    picked_new = rng.sample(second, sizes.served_new + sizes.evaluation)
    served_old = picked_old[sizes.train : sizes.train + sizes.served_old]
    return Periods(
        train=picked_old[: sizes.train],
        served=served_old + picked_new[: sizes.served_new],
        shift=sizes.served_old,
        eval_old=picked_old[sizes.train + sizes.served_old :],
        eval_new=picked_new[sizes.served_new :],
    )


def scenarios(sizes: Sizes, seed: int) -> dict[str, Periods]:
    tweets = health_tweets()
    early = {"2011Q2", "2011Q3", "2011Q4", "2012Q1", "2012Q2", "2012Q3", "2012Q4", "2013Q1", "2013Q2"}
    late = {"2014Q4", "2015Q1", "2015Q2"}
    return {
        "health_news": periods(tweets, early, late, sizes, seed),
        "sentiment_domains": periods(list(sentiment_domains()), {"movieReviewSnippets"}, {"tweets"}, sizes, seed),
    }


@dataclass(frozen=True)
class ServedRow:
    item: LabelledText
    predicted: str
    confidence: float


def feedback(regime: str, served: Sequence[ServedRow], rng: random.Random) -> list[tuple[int, str]]:
    """(served index, kind) of every label sent for the served rows under `regime`."""
    sent = []
    for index, row in enumerate(served):
        audited = rng.random() < AUDIT_RATE
        if regime == "full":
            sent.append((index, "label"))
            continue
        if audited:
            sent.append((index, "audit"))
        if regime == "corrections":
            wrong = row.predicted != row.item.label
            if rng.random() < (CORRECT_WRONG if wrong else CONFIRM_RIGHT):
                sent.append((index, "correction" if wrong else "confirmation"))
    return sent


def monitor_rows(served: Sequence[ServedRow], sent: Sequence[tuple[int, str]]) -> FeedbackRows:
    """The served stream as the daemon's `served` monitor reads it (ingest.prediction_log.read_served)."""
    given: dict[int, tuple[int, str]] = {}
    for index, kind in sent:
        rank = {"audit": 0, "label": 0, "correction": 1}.get(kind, 2)
        if index not in given or rank < given[index][0]:
            given[index] = (rank, served[index].item.label)
    labels = [given[i][1] if i in given else row.predicted for i, row in enumerate(served)]
    return FeedbackRows.from_lists(
        range(1, len(served) + 1),
        [row.item.text for row in served],
        labels,
        [row.predicted for row in served],
        confidence=[row.confidence for row in served],
    )


def detection(rows: FeedbackRows, shift: int, sizes: Sizes) -> dict[str, Any]:
    settings = DriftSettings(stream="served", warmup_rows=sizes.warmup_rows, window_rows=sizes.window_rows,
                             min_window_rows=sizes.window_rows // 2, cooldown_rows=len(rows))  # fmt: skip
    events = DriftMonitor(settings).update(rows)
    after = [event.row_id for event in events if event.row_id > shift]
    return {
        "detected": bool(after),
        "delay_rows": after[0] - shift if after else None,
        "events_per_shift": len(after),
        "false_alarms": len(events) - len(after),
        "signals": list(next(event.signals for event in events if event.row_id > shift)) if after else [],
    }


def split_of(kind: str, row_id: str) -> Split:
    """Ingest's split rule (ingest/store.py): audits held out, what users chose to send trained on, labels by hash."""
    if kind in ("audit", "correction", "confirmation"):
        return "holdout" if kind == "audit" else "train"
    return "holdout" if int(hashlib.md5(row_id.encode()).hexdigest()[:8], 16) < HOLDOUT_FRACTION * 2**32 else "train"


def window_rows(served: Sequence[ServedRow], sent: Sequence[tuple[int, str]], shift: int) -> list[Row]:
    rows = []
    for index, kind in sent:
        if index >= shift:
            item = served[index].item
            row_id = f"{item.id}:{kind}"
            prediction = None if kind == "label" else served[index].predicted  # by prediction id, ingest fills it
            rows.append(Row(row_id, item.text, item.label, 1, split_of(kind, row_id), kind, prediction))
    return rows


def same_count(full: Sequence[Row], count: int, seed: int) -> list[Row]:
    """`count` of the full regime's training rows drawn at random, with its held-out rows."""
    train = [row for row in full if row.split == "train"]
    return random.Random(seed).sample(train, min(count, len(train))) + [row for row in full if row.split == "holdout"]


def accuracy_and_confidence(model_dir: Path, items: Sequence[LabelledText]) -> tuple[float, float]:
    predictions = predict(load_classifier(model_dir), [item.text for item in items])
    right = [p.label == item.label for p, item in zip(predictions, items, strict=True)]
    return float(np.mean(right)), float(np.mean([p.scores[p.label] for p in predictions]))


@dataclass(frozen=True)
class Stage0:
    """The model before the shift, what it served, and how it does."""

    candidate: Candidate
    rows: list[Row]
    served: list[ServedRow]
    no_update: dict[str, float]  # accuracy on each period's evaluation rows
    served_old: tuple[float, float]  # accuracy and mean confidence on the old served rows (a stationary stretch)


def stage0(name: str, data: Periods, settings: TrainerSettings, sizes: Sizes, work: Path) -> Stage0:
    rows = [Row(t.id, t.text, t.label, 0, "train") for t in data.train]
    rows += [Row(t.id, t.text, t.label, 0, "holdout") for t in data.eval_old[: sizes.evaluation // 5]]
    first = run(settings, rows, [], None, work / f"{name}-stage0")
    predicted = predict(load_classifier(first.model_dir), [item.text for item in data.served])
    served = [ServedRow(item, p.label, p.scores[p.label]) for item, p in zip(data.served, predicted, strict=True)]
    old = served[: data.shift]
    no_update = {period: accuracy_and_confidence(first.model_dir, items)[0]
                 for period, items in (("old", data.eval_old), ("new", data.eval_new))}  # fmt: skip
    stationary = (
        float(np.mean([r.predicted == r.item.label for r in old])),
        float(np.mean([r.confidence for r in old])),
    )
    return Stage0(first, rows, served, no_update, stationary)


def updated(base: Stage0, window: list[Row], settings: TrainerSettings, out: Path) -> Candidate:
    """driftloop's update on `window`; the stage-0 model itself when nothing in it may be trained on (an audit
    sample alone: audits are held out)."""
    if not any(row.split == "train" for row in window):
        return base.candidate
    return run(settings, window, base.rows, base.candidate.adapter_dir, out)


def scenario(
    name: str, data: Periods, settings: TrainerSettings, sizes: Sizes, seed: int, work: Path
) -> dict[str, Any]:
    base = stage0(name, data, settings, sizes, work)
    results: dict[str, Any] = {}
    oracle_new = 0.0  # the `full` regime's candidate is the oracle: every served row labelled, the same recipe
    sent = {regime: feedback(regime, base.served, random.Random(seed)) for regime in REGIMES}
    windows = {regime: window_rows(base.served, sent[regime], data.shift) for regime in REGIMES}
    trained_on = sum(row.split == "train" for row in windows["corrections"])
    reference = updated(base, same_count(windows["full"], trained_on, seed), settings, work / f"{name}-same-count")
    same_count_new = accuracy_and_confidence(reference.model_dir, data.eval_new)[0]
    for regime in REGIMES:
        window = windows[regime]
        candidate = updated(base, window, settings, work / f"{name}-{regime}")
        new_accuracy, new_confidence = accuracy_and_confidence(candidate.model_dir, data.eval_new)
        old_after = accuracy_and_confidence(candidate.model_dir, data.eval_old)[0]
        oracle_new = new_accuracy if regime == "full" else oracle_new
        old_accuracy, old_confidence = base.served_old
        results[regime] = {
            **detection(monitor_rows(base.served, sent[regime]), data.shift, sizes),
            "labels_sent": len(window),
            "updated": candidate is not base.candidate,
            "gain_pts": round(100 * (new_accuracy - base.no_update["new"]), 2),
            "gap_to_oracle_pts": round(100 * (oracle_new - new_accuracy), 2),
            "forgetting_pts": round(100 * (base.no_update["old"] - old_after), 2),
            "estimate_error_pts": round(
                100 * max(abs(old_confidence - old_accuracy), abs(new_confidence - new_accuracy)), 2
            ),  # fmt: skip
            "accuracy": {"new": round(new_accuracy, 4), "old": round(old_after, 4)},
        }
        if regime == "corrections":
            results[regime]["gap_to_same_count_pts"] = round(100 * (same_count_new - new_accuracy), 2)
        log(f"{name} {regime}: {json.dumps(results[regime])}")
    results["reference"] = {"no_update": {period: round(value, 4) for period, value in base.no_update.items()},
                            "oracle_new": round(oracle_new, 4), "same_count_new": round(same_count_new, 4),
                            "same_count_rows": trained_on}  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small samples, one epoch: a smoke run")
    parser.add_argument("--seed", type=int, default=7, help="seed of the samples and of the simulated people")
    parser.add_argument("--no-service", action="store_true", help="skip the service figures (bench/serve.py)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sizes = QUICK if args.quick else FULL
    settings = bench_settings(Size(sizes.train, sizes.evaluation, sizes.epochs), args.seed)
    torch.set_num_threads(settings.torch_threads)
    started = time.perf_counter()
    report: dict[str, Any] = {"scenarios": {}}
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-loop-") as scratch:
        for name, data in scenarios(sizes, args.seed).items():
            report["scenarios"][name] = scenario(name, data, settings, sizes, args.seed, Path(scratch))
        if not args.no_service:
            service = measure_service(Path(scratch) / "service")
            report |= {key: service[key] for key in ("log_overhead_ratio", "int8_speedup", "int8_rss_ratio")}
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    for name, regimes in report["scenarios"].items():
        for regime in REGIMES:
            figures = regimes[regime]
            print(f"{name:>17} {regime:>11}: detected {figures['detected']} after {figures['delay_rows']} rows, "
                  f"{figures['false_alarms']} false alarms, {figures['labels_sent']} labels, gain "
                  f"{figures['gain_pts']:+.1f} pts, gap to oracle {figures['gap_to_oracle_pts']:+.1f}, forgetting "
                  f"{figures['forgetting_pts']:+.1f}, estimate error {figures['estimate_error_pts']:.1f}")  # fmt: skip
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
