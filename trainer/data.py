"""Selecting a run's rows: the new window, a class-balanced replay sample, near-duplicate filtering, validation.

Pure functions over plain rows: the daemon reads them from its store and passes them in.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from trainer.dedup import near_duplicates
from trainer.errors import BadTrainingData
from trainer.feedback_mix import FeedbackMix, mix_weights
from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

Split = Literal["train", "holdout"]
Stratum = Callable[["Row"], str]  # the group a row is balanced and validated within


@dataclass(frozen=True)
class Row:
    """One labelled text as the store holds it (generation: the prompt, and the answer as its label)."""

    id: str
    text: str
    label: str
    episode: int
    split: Split = "train"
    kind: str = "label"  # correction, confirmation, audit, or label (a whole record)
    prediction: str | None = None  # what the service answered, when the row says so


@dataclass(frozen=True)
class TrainingData:
    """The rows of one run, ready for `trainer.train`."""

    train: tuple[Row, ...]
    train_weights: tuple[float, ...]  # loss weight of each training row
    validation: tuple[Row, ...]
    holdout: tuple[Row, ...]
    new_rows: int
    replay_rows: int
    duplicates_dropped: int
    dedup_seconds: float
    mix: FeedbackMix | None = None  # how corrections and confirmations were weighted (trainer/feedback_mix.py)

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label in the run's rows, sorted."""
        return tuple(sorted({row.label for row in (*self.train, *self.validation, *self.holdout)}))

    def holdout_by_episode(self) -> dict[int, tuple[Row, ...]]:
        episodes: dict[int, list[Row]] = defaultdict(list)
        for row in self.holdout:
            episodes[row.episode].append(row)
        return {episode: tuple(rows) for episode, rows in sorted(episodes.items())}


def rows_from_columns(columns: Mapping[str, Sequence[Any]]) -> list[Row]:
    """Rows from column lists (e.g. `pyarrow.Table.to_pydict()`) with keys id, text, label, episode, split."""
    missing = {"id", "text", "label", "episode"} - set(columns)
    if missing:
        raise BadTrainingData(f"columns {sorted(missing)} are missing; got {sorted(columns)}")
    splits = columns.get("split") or ["train"] * len(columns["id"])
    rows = []
    for id_, text, label, episode, split in zip(
        columns["id"], columns["text"], columns["label"], columns["episode"], splits, strict=True
    ):
        if split not in ("train", "holdout"):
            raise BadTrainingData(f"row {id_!r} has split {split!r}; expected 'train' or 'holdout'")
        rows.append(Row(str(id_), str(text), str(label), int(episode), split))
    return rows


def select_rows(window: Iterable[Row], history: Iterable[Row], settings: TrainerSettings) -> TrainingData:
    """The rows of one run.

    `window`: rows stored since the last run, oldest first; `history`: every earlier row. Training rows are the
    window's train rows plus `settings.replay_size` history train rows balanced over classes (and, within a
    class, over episodes); near-duplicates (of each other, newest first, or of any holdout text) are dropped;
    the validation split is taken per class from the training rows by a hash of the row id (the same rows in every
    run). Holdout rows of both are kept for evaluation.

    Generation has no classes (every answer is its own label): replay is spread over episodes, validation drawn from
    all rows, and a near-duplicate is one of prompt and answer together (one word's senses share a prompt).
    """
    generation = settings.task_kind == "generation"
    stratum: Stratum = (lambda row: "") if generation else (lambda row: row.label)
    compared: Callable[[Row], str] = (lambda row: f"{row.text}\n{row.label}") if generation else (lambda row: row.text)
    window_rows, history_rows = list(window), list(history)
    holdout = tuple(row for row in (*history_rows, *window_rows) if row.split == "holdout")
    new = [row for row in reversed(window_rows) if row.split == "train"]
    if not new:
        raise BadTrainingData("the new window has no training rows; wait for more feedback before training")
    rng = random.Random(settings.seed)
    replay = replay_sample([row for row in history_rows if row.split == "train"], settings.replay_size, rng, stratum)
    started = time.perf_counter()
    candidates = [*new, *replay]
    dropped = near_duplicates([compared(row) for row in candidates], settings.dedup_threshold,
                              [compared(row) for row in holdout])  # fmt: skip
    kept = [row for row, drop in zip(candidates, dropped, strict=True) if not drop]
    dedup_seconds = time.perf_counter() - started
    train, validation = split_validation(kept, settings.validation_fraction, rng, stratum)
    new_ids = {row.id for row in new}
    weights = loss_weights([row.id in new_ids for row in train], settings.new_window_share)
    weights, mix = mix_weights(train, weights, new_ids, window_rows, settings.mix_min_audit_rows)
    log.info(
        "selected %d new + %d replay rows, dropped %d near-duplicates in %.2fs, %d for validation",
        len(new), len(replay), sum(dropped), dedup_seconds, len(validation),
    )  # fmt: skip
    if mix.applied:
        log.info("weighted %d corrections and %d confirmations to the audited served error rate %.3f (%d audit rows)",
                 mix.corrections, mix.confirmations, mix.served_error_rate, mix.audit_rows)  # fmt: skip
    return TrainingData(
        train=tuple(train),
        train_weights=weights,
        validation=tuple(validation),
        holdout=holdout,
        new_rows=len(new),
        replay_rows=len(replay),
        duplicates_dropped=sum(dropped),
        dedup_seconds=dedup_seconds,
        mix=mix,
    )


def loss_weights(is_new: Sequence[bool], new_share: float) -> tuple[float, ...]:
    """Per training row, the weight that gives the new rows at least `new_share` of the loss (mean weight 1)."""
    total, new = len(is_new), sum(is_new)
    if new == 0 or new == total or new >= new_share * total:
        return (1.0,) * total
    new_weight, old_weight = new_share * total / new, (1 - new_share) * total / (total - new)
    return tuple(new_weight if flag else old_weight for flag in is_new)


def replay_sample(
    pool: Sequence[Row], size: int, rng: random.Random, stratum: Stratum = lambda row: row.label
) -> list[Row]:
    """Up to `size` rows with the classes (`stratum`s) as equal as the pool allows, spread evenly over episodes."""
    by_class: dict[str, dict[int, list[Row]]] = defaultdict(lambda: defaultdict(list))
    for row in pool:
        by_class[stratum(row)][row.episode].append(row)
    quotas = _balanced_quotas({label: sum(map(len, eps.values())) for label, eps in by_class.items()}, size)
    sample: list[Row] = []
    for label in sorted(by_class):
        episodes = [by_class[label][episode] for episode in sorted(by_class[label])]
        for rows in episodes:
            rng.shuffle(rows)
        sample.extend(_round_robin(episodes, quotas[label]))
    return sample


def _balanced_quotas(available: Mapping[str, int], size: int) -> dict[str, int]:
    quotas = dict.fromkeys(available, 0)
    left, open_labels = size, sorted(available)
    while left > 0 and open_labels:
        share = max(1, left // len(open_labels))
        for label in list(open_labels):
            take = min(share, available[label] - quotas[label], left)
            quotas[label] += take
            left -= take
            if quotas[label] == available[label]:
                open_labels.remove(label)
            if left == 0:
                break
    return quotas


def _round_robin(groups: Sequence[Sequence[Row]], count: int) -> list[Row]:
    taken: list[Row] = []
    depth = 0
    while len(taken) < count:
        for rows in groups:
            if depth < len(rows) and len(taken) < count:
                taken.append(rows[depth])
        depth += 1
    return taken


def split_validation(
    rows: Sequence[Row], fraction: float, rng: random.Random, stratum: Stratum = lambda row: row.label
) -> tuple[list[Row], list[Row]]:
    """Per class (`stratum`), the rows whose id hashes below `fraction` go to validation (at least one, and never
    all, of a class with two or more rows). Membership depends on the row id alone, so a row that validates one run
    validates every later run too: no run trains on a row an earlier run validated on, and the replayed rows
    the parent was trained on never sit in validation, where they would reward memorising them."""
    by_label: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        by_label[stratum(row)].append(row)
    train: list[Row] = []
    validation: list[Row] = []
    for label in sorted(by_label):
        ranked = sorted(((_unit_hash(row.id), row) for row in by_label[label]), key=lambda pair: pair[0])
        below = sum(1 for value, _ in ranked if value < fraction)
        count = min(max(below, 1), len(ranked) - 1)
        validation.extend(row for _, row in ranked[:count])
        train.extend(row for _, row in ranked[count:])
    if not train or not validation:
        raise BadTrainingData(
            f"{len(rows)} training rows cannot give both a training and a validation split; "
            "at least two rows of one class are needed"
        )
    rng.shuffle(train)
    return train, validation


def _unit_hash(row_id: str) -> float:
    """A number in [0, 1) fixed by the row id (the same in every process and run)."""
    return int.from_bytes(hashlib.blake2b(row_id.encode(), digest_size=8).digest()) / 2**64
