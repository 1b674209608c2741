"""Drift monitor benchmark: synthetic streams with known shifts and the real health-news tweets.

driftloop's monitor (default settings) and single river detectors at their defaults on the error stream,
measured in the same run. The last line is one JSON object.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    # `python bench/drift.py` puts bench/ first, where this very file would be imported as `drift`
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402

from drift.backtest import BacktestReport, Score, backtest  # noqa: E402
from drift.rows import FeedbackRows  # noqa: E402
from drift.settings import DriftSettings  # noqa: E402
from drift.synthetic import Kind, SyntheticStream, synthetic_stream  # noqa: E402
from ingest.datasets import LabelledText, health_tweets  # noqa: E402

SHIFT_SEEDS: dict[Kind, int] = {"abrupt": 20, "ramp": 5, "label_mix": 5, "length": 5}
SHIFT_ROWS, CHANGE_AT = 20_000, 8_000
STATIONARY_ROWS = 200_000
TRAIN_BEFORE = datetime(2013, 5, 1, tzinfo=UTC)
PUNCTUATION = "\"'.,;:!?()[]"


def main() -> None:
    settings = DriftSettings()
    stationary = backtest(synthetic_stream("stationary", STATIONARY_ROWS, seed=0).rows, settings)
    shifts = {
        kind: [backtest(s.rows, settings, s.change_points) for s in _streams(kind, seeds)]
        for kind, seeds in SHIFT_SEEDS.items()
    }
    print(f"stationary {STATIONARY_ROWS} rows: {stationary.monitor.rows_per_s:,.0f} rows/s through the monitor")
    names = ["driftloop", *(score.name for score in stationary.baselines)]
    figures = {name: _figures(name, stationary, shifts) for name in names}
    for name, values in figures.items():
        print(f"{name:>10}: {values}")
    tweets = _tweet_backtest(settings)
    result = {**figures["driftloop"], "baseline": {name: figures[name] for name in names[1:]}, "tweets": tweets}
    print(json.dumps(result, sort_keys=True))


def _streams(kind: Kind, seeds: int) -> list[SyntheticStream]:
    return [synthetic_stream(kind, SHIFT_ROWS, (CHANGE_AT,), seed=seed) for seed in range(seeds)]


def _pick(report: BacktestReport, name: str) -> Score:
    return report.monitor if name == "driftloop" else next(s for s in report.baselines if s.name == name)


def _figures(name: str, stationary: BacktestReport, shifts: dict[Kind, list[BacktestReport]]) -> dict[str, object]:
    abrupt = [_pick(report, name).delays[0] for report in shifts["abrupt"]]
    found = [delay for delay in abrupt if delay is not None]
    per_shift = {
        kind: statistics.mean(_pick(report, name).events_per_shift[0] for report in reports)
        for kind, reports in shifts.items()
    }
    return {
        "false_alarms_stationary": _pick(stationary, name).false_alarms,
        "median_delay_rows": statistics.median(found) if found else None,
        "missed_abrupt": len(abrupt) - len(found),
        "events_per_shift": per_shift,
        "rows_per_s": round(_pick(stationary, name).rows_per_s),
    }


def _tweet_backtest(settings: DriftSettings) -> dict[str, object]:
    """Errors of a naive Bayes trained before TRAIN_BEFORE; change points: outlets it never saw start tweeting."""
    tweets = health_tweets()
    cut = next(index for index, tweet in enumerate(tweets) if tweet.ts >= TRAIN_BEFORE)
    predictions = _naive_bayes(tweets[:cut], tweets[cut:])
    later = tweets[cut:]
    known = {tweet.label for tweet in tweets[:cut]}
    first_seen: dict[str, int] = {}
    for index, tweet in enumerate(later):
        if tweet.label not in known:
            first_seen.setdefault(tweet.label, index)
    rows = FeedbackRows.from_lists(
        list(range(len(later))), [t.text for t in later], [t.label for t in later], predictions
    )
    report = backtest(rows, settings, sorted(set(first_seen.values())))
    errors = np.array([p != t.label for p, t in zip(predictions, later, strict=True)])
    print(f"tweets: trained on {cut} tweets before {TRAIN_BEFORE:%Y-%m-%d}, replayed {len(later)} later ones")
    for quarter in sorted({t.group for t in later}):
        picked = np.array([t.group == quarter for t in later])
        print(f"  {quarter}: {picked.sum():>6} tweets, error rate {errors[picked].mean():.3f}")
    print(f"  new outlets at rows {sorted(first_seen.items(), key=lambda item: item[1])}")
    for event in report.events:
        print(f"  event at row {event.row_id} ({later[event.row_id].ts:%Y-%m-%d}): {event.describe()}")
    scores = [report.monitor, *report.baselines]
    for score in scores:
        events, alarms = len(score.event_rows), score.false_alarms
        print(f"  {score.name:>10}: {events} events, delays {score.delays}, false alarms {alarms}")
    return {
        score.name: {
            "events": len(score.event_rows),
            "false_alarms_per_10k": round(score.false_alarms_per_10k, 2),
            "median_delay_rows": score.median_delay,
        }
        for score in scores
    }


def _naive_bayes(train: Sequence[LabelledText], test: Sequence[LabelledText]) -> list[str]:
    """Multinomial naive Bayes over lower-cased words (add-0.1 smoothing), in numpy."""
    train_tokens, train_doc = _tokens([t.text for t in train])
    vocabulary = {token: index for index, token in enumerate(dict.fromkeys(train_tokens))}
    classes = sorted({t.label for t in train})
    label_index = {label: index for index, label in enumerate(classes)}
    y = np.array([label_index[t.label] for t in train])
    counts = np.zeros((len(classes), len(vocabulary)))
    np.add.at(counts, (y[train_doc], [vocabulary[token] for token in train_tokens]), 1)
    log_p = np.log((counts + 0.1) / (counts.sum(axis=1, keepdims=True) + 0.1 * len(vocabulary)))
    test_tokens, test_doc = _tokens([t.text for t in test])
    ids = np.array([vocabulary.get(token, -1) for token in test_tokens])
    known = ids >= 0
    scores = np.tile(np.log(np.bincount(y) / len(y)), (len(test), 1))
    for column in range(len(classes)):
        scores[:, column] += np.bincount(test_doc[known], weights=log_p[column, ids[known]], minlength=len(test))
    return [classes[index] for index in scores.argmax(axis=1)]


def _tokens(texts: list[str]) -> tuple[list[str], np.ndarray]:
    lists = pc.utf8_split_whitespace(pc.utf8_lower(pa.array(texts)))
    flat = pc.utf8_trim(pc.list_flatten(lists), characters=PUNCTUATION).to_pylist()
    return flat, np.asarray(pc.list_parent_indices(lists).to_numpy())


if __name__ == "__main__":
    main()
