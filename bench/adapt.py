"""Adaptation benchmark: MiniLM-L6 on two real shifting streams, four update strategies, one JSON line at the end.

Scenarios (episodes in stream order):
- health_news: health-news tweets, label = outlet; episodes = periods ..2013Q2 | 2013Q3-Q4 | 2014Q1-Q3 | 2014Q4-2015Q2
  (new outlets appear in the later periods, so the label set grows).
- sentiment_domains: positive/negative; episodes = movie → amazon → tweets → nyt snippets.

Subsample (seeded, documented): from every episode `train` rows for training and `holdout` rows for evaluation,
drawn uniformly at random without overlap. Full run: 600 + 1000 per episode, 3 epochs at most;
`--quick`: 150 + 100 per episode, 2 epochs. The holdouts are large because the forgetting target (1 point) is
smaller than the evaluation noise of small ones: with 300 binary-sentiment rows the 95% interval of one episode's
forgetting spans about ±4 points. The replay size is the default (2000), so with this subsample every earlier
training row is replayed. Every other setting is the default, except gradient accumulation 1 (with 600-row
windows, 4 leaves too few optimizer steps: measured macro-F1 0.08 vs 0.25 on the first health-news episode) and,
for the oracle's full fine-tune, learning rate 5e-5 (head included).

Strategies, each continuing stage by stage from its own previous model (stage 0, LoRA on episode 0, is shared):
- no_update: the stage-0 model, never updated;
- new_window: LoRA on the new episode only (no replay);
- driftloop: the default: LoRA on the new episode plus a class-balanced replay sample of the earlier ones;
- oracle: a full fine-tune of the base on every episode's training rows so far (run at the last stage only).
Throughput: one epoch of a plain transformers Trainer + peft LoRA loop (same settings) over (up to 1200 of) the
driftloop strategy's last-stage training rows, timed between two epochs of driftloop's own loop over the same
rows (their mean is compared), so a change in the machine's load hits both sides alike.

Runs go through `trainer.pipeline.run_job` in this process (the daemon adds a child process around it).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# `python bench/adapt.py` puts bench/ first on sys.path, where bench/ingest.py and bench/drift.py would shadow
# the packages of the same names.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from ingest.datasets import LabelledText, health_tweets, sentiment_domains  # noqa: E402
from registry.bootstrap import paired_bootstrap  # noqa: E402
from trainer.data import Row, select_rows  # noqa: E402
from trainer.evaluate import score_episodes  # noqa: E402
from trainer.job import Job  # noqa: E402
from trainer.metrics import matrix_forgetting  # noqa: E402
from trainer.pipeline import run_job  # noqa: E402
from trainer.predict import load_classifier  # noqa: E402
from trainer.results import Candidate, EpisodePredictions  # noqa: E402
from trainer.settings import TrainerSettings  # noqa: E402

THROUGHPUT_ROWS = 1200  # rows of the last driftloop run timed, paired: driftloop, plain loop, driftloop again
_TRAIN_ROWS: dict[Path, tuple[Row, ...]] = {}  # the training rows of each run, by output directory
HEALTH_EPISODES = (("2013Q2",), ("2013Q3", "2013Q4"), ("2014Q1", "2014Q2", "2014Q3"), ("2015Q2",))


@dataclass(frozen=True)
class Size:
    train: int
    holdout: int
    epochs: int


FULL = Size(train=600, holdout=1000, epochs=3)
QUICK = Size(train=150, holdout=100, epochs=2)


def health_episode(group: str) -> int:
    """Index of the episode a quarter belongs to (each episode lists its last quarter)."""
    return next(i for i, ends in enumerate(HEALTH_EPISODES) if group <= ends[-1])


def sample_episodes(
    items: Sequence[LabelledText], episode_of: dict[str, int], size: Size, seed: int
) -> list[list[Row]]:
    grouped: dict[int, list[LabelledText]] = {}
    for item in items:
        grouped.setdefault(episode_of[item.group], []).append(item)
    rng = random.Random(seed)
    episodes = []
    for episode in sorted(grouped):
        chosen = rng.sample(grouped[episode], size.holdout + size.train)
        episodes.append(
            [Row(t.id, t.text, t.label, episode, "holdout") for t in chosen[: size.holdout]]
            + [Row(t.id, t.text, t.label, episode, "train") for t in chosen[size.holdout :]]
        )
    return episodes


def health_news(size: Size, seed: int) -> list[list[Row]]:
    tweets = health_tweets()
    return sample_episodes(tweets, {t.group: health_episode(t.group) for t in tweets}, size, seed)


def sentiment(size: Size, seed: int) -> list[list[Row]]:
    snippets = list(sentiment_domains())
    order = ("movieReviewSnippets", "amazonReviewSnippets", "tweets", "nytEditorialSnippets")
    return sample_episodes(snippets, {domain: i for i, domain in enumerate(order)}, size, seed)


def bench_settings(size: Size, seed: int, **changes: Any) -> TrainerSettings:
    """The defaults, except what the docstring names (epochs of the subsample, no gradient accumulation)."""
    fixed = {"max_epochs": size.epochs, "grad_accumulation": 1, "torch_threads": 2, "latency_samples": 20,
             "log_every_steps": 50, "seed": seed}  # fmt: skip
    return TrainerSettings(**(fixed | changes))


def oracle_settings(settings: TrainerSettings) -> TrainerSettings:
    """The oracle: a full fine-tune of the base at 5e-5 (head included), on every row so far, so no replay. What it
    does not use (replay weighting, LoRA shape) is reset to the defaults, so settings that differ only there share
    one oracle."""
    unused = ("new_window_share", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules")
    defaults = {name: TrainerSettings.model_fields[name].default for name in unused}
    full = {"method": "full", "learning_rate": 5e-5, "head_learning_rate": 5e-5, "replay_size": 0}
    return settings.model_copy(update=defaults | full)


def run(settings: TrainerSettings, window: list[Row], history: list[Row], parent: Path | None, out: Path) -> Candidate:
    data = select_rows(window, history, settings)
    _TRAIN_ROWS[out] = data.train
    return run_job(Job(settings, data, settings.base_model_path(), parent, out), lambda event: None, lambda: False)


def holdouts(episodes: Sequence[Sequence[Row]]) -> list[Row]:
    return [row for rows in episodes for row in rows if row.split == "holdout"]


def row_of(candidate: Candidate) -> dict[int, float]:
    return {episode: scores.headline for episode, scores in candidate.report.episodes.items()}


def scenario(name: str, episodes: list[list[Row]], settings: TrainerSettings, work: Path) -> dict[str, Any]:
    last = len(episodes) - 1
    no_replay = settings.model_copy(update={"replay_size": 0})
    first = run(settings, episodes[0], [], None, work / f"{name}-stage0")
    matrices: dict[str, list[dict[int, float]]] = {"new_window": [row_of(first)], "driftloop": [row_of(first)]}
    fits: dict[str, list[Candidate]] = {"new_window": [first], "driftloop": [first]}
    for stage in range(1, last + 1):
        int8 = settings.model_copy(update={"export_int8": stage == last})
        for strategy, config, history in (
            ("new_window", no_replay, holdouts(episodes[:stage])),
            ("driftloop", int8, [row for rows in episodes[:stage] for row in rows]),
        ):
            parent = fits[strategy][-1].adapter_dir
            candidate = run(config, episodes[stage], history, parent, work / f"{name}-{strategy}-{stage}")
            matrices[strategy].append(row_of(candidate))
            fits[strategy].append(candidate)
            log(f"{name} stage {stage} {strategy}: {fmt(row_of(candidate))}")
    oracle = run(
        oracle_settings(settings), [row for rows in episodes for row in rows], [], None, work / f"{name}-oracle"
    )
    baseline = load_classifier(first.model_dir)
    by_episode: dict[int, tuple[Row, ...]] = {}
    for row in holdouts(episodes):
        by_episode[row.episode] = (*by_episode.get(row.episode, ()), row)
    no_update = {e: s.headline for e, s in score_episodes(baseline, by_episode).items()}
    final = fits["driftloop"][-1]
    rows = _TRAIN_ROWS[final.path][:THROUGHPUT_ROWS]
    ours_before = our_loop_samples_per_s(settings, rows)
    plain = plain_loop_samples_per_s(settings, rows, work / f"{name}-plain")
    ours = (ours_before + our_loop_samples_per_s(settings, rows)) / 2
    forgetting = {strategy: matrix_forgetting(matrix) for strategy, matrix in matrices.items()}
    summary = {
        "episode_matrix": {
            **{s: [fmt(row) for row in m] for s, m in matrices.items()},
            "no_update": fmt(no_update),
            "oracle": fmt(row_of(oracle)),
        },  # fmt: skip
        "forgetting_per_episode_pts": {s: {e: round(100 * v, 2) for e, v in f.items()} for s, f in forgetting.items()},
        "train_seconds": {s: round(sum(c.fit.train_seconds for c in cs[1:]), 1) for s, cs in fits.items()}
        | {"stage0": round(first.fit.train_seconds, 1), "oracle": round(oracle.fit.train_seconds, 1)},
        "samples_per_s": {s: round(cs[-1].fit.samples_per_s, 1) for s, cs in fits.items()}
        | {
            "oracle": round(oracle.fit.samples_per_s, 1),
            "plain_trainer_peft": round(plain, 1),
            "driftloop_paired": round(ours, 1),
        },
        "gap_to_oracle_pts": round(100 * (row_of(oracle)[last] - row_of(final)[last]), 2),
        "gap_interval_pts": difference_interval(oracle.predictions[last], final.predictions[last]),
        "forgetting_pts": round(100 * max(forgetting["driftloop"].values()), 2),
        "forgetting_interval_pts": forgetting_intervals(fits["driftloop"]),
        "naive_forgetting_pts": round(100 * max(forgetting["new_window"].values()), 2),
        "throughput_ratio": round(ours / plain, 3),
        "trainable_parameters_pct": round(100 * final.fit.trainable_parameters / final.fit.total_parameters, 3),
        "int8": final.report.int8,
    }
    return summary


def our_loop_samples_per_s(settings: TrainerSettings, rows: Sequence[Row]) -> float:
    """One epoch of driftloop's own loop (fresh adapter) over `rows`; its samples/s (validation not counted)."""
    from trainer.fit import fit, prepare
    from trainer.model import load_tokenizer, setup_model

    one = settings.model_copy(update={"max_epochs": 1})
    labels = sorted({row.label for row in rows})
    tokenizer = load_tokenizer(settings.base_model_path())
    model, order = setup_model(one, settings.base_model_path(), None, labels)
    validation = ([row.text for row in rows[:8]], [row.label for row in rows[:8]])
    data = prepare(tokenizer, one, [r.text for r in rows], [r.label for r in rows], order, validation)
    return fit(model, tokenizer, data, one, order, lambda event: None, lambda: False).samples_per_s


def plain_loop_samples_per_s(settings: TrainerSettings, rows: Sequence[Row], out: Path) -> float:
    """One epoch of a plain transformers Trainer + peft LoRA over `rows`; its samples/s."""
    from peft import LoraConfig, TaskType, get_peft_model
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from trainer.model import load_classifier_model, load_tokenizer

    labels = tuple(sorted({row.label for row in rows}))
    texts, targets = [row.text for row in rows], [row.label for row in rows]
    tokenizer = load_tokenizer(settings.base_model_path())
    encoded = tokenizer(texts, truncation=True, max_length=settings.max_length)
    dataset = [
        {"input_ids": ids, "attention_mask": mask, "labels": labels.index(label)}
        for ids, mask, label in zip(encoded["input_ids"], encoded["attention_mask"], targets, strict=True)
    ]
    torch.manual_seed(settings.seed)
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=settings.lora_r, lora_alpha=settings.lora_alpha,
                        lora_dropout=settings.lora_dropout, target_modules=list(settings.target_modules()),
                        modules_to_save=list(settings.modules_to_save))  # fmt: skip
    model = get_peft_model(load_classifier_model(settings.base_model_path(), labels), config)
    args = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=settings.batch_size,
        gradient_accumulation_steps=settings.grad_accumulation,
        num_train_epochs=1,
        learning_rate=settings.learning_rate,
        weight_decay=settings.weight_decay,
        warmup_steps=settings.warmup_ratio,
        label_smoothing_factor=settings.label_smoothing,
        max_grad_norm=settings.max_grad_norm,
        save_strategy="no",
        eval_strategy="no",
        report_to=[],
        disable_tqdm=True,
        use_cpu=True,
        seed=settings.seed,
        logging_strategy="no",
    )
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=DataCollatorWithPadding(tokenizer))
    metrics = trainer.train().metrics
    return float(metrics["train_samples_per_second"])


def forgetting_intervals(stages: Sequence[Candidate], samples: int = 2000) -> dict[int, list[float]]:
    """Per earlier episode: [low, point, high], the forgetting of the last stage (best earlier stage's macro-F1
    minus the last stage's, in points) with its two-sided 95% paired-bootstrap interval over the holdout rows, so
    a forgetting inside the evaluation noise can be told from a real one."""
    last = stages[-1]
    intervals = {}
    for episode, final in sorted(last.predictions.items()):
        earlier = [stage for stage in stages[:-1] if episode in stage.predictions]
        if not earlier:
            continue
        best = max(earlier, key=lambda stage: stage.report.episodes[episode].headline).predictions[episode]
        intervals[episode] = difference_interval(best, final, samples)
    return intervals


def difference_interval(first: EpisodePredictions, second: EpisodePredictions, samples: int = 2000) -> list[float]:
    """[low, point, high]: `first`'s macro-F1 minus `second`'s on the same holdout rows, in points, with its
    two-sided 95% paired-bootstrap interval over the rows."""
    assert first.ids == second.ids, "both models must be evaluated on the same holdout rows, in the same order"
    gain = paired_bootstrap(first.labels, first.candidate, second.candidate, "macro_f1", samples, 0.975, seed=0)
    loss = paired_bootstrap(first.labels, second.candidate, first.candidate, "macro_f1", samples, 0.975, seed=0)
    return [round(100 * value, 2) for value in (gain.lower_bound, gain.gain, -loss.lower_bound)]


def print_tables(name: str, result: dict[str, Any]) -> None:
    """The episode matrix (macro-F1 %, rows: model after each stage; columns: episode holdouts) and the rest."""
    print(f"== {name}: macro-F1 (%) per episode holdout, one row per stage")
    matrix = result["episode_matrix"]
    for strategy in ("new_window", "driftloop"):
        for stage, row in enumerate(matrix[strategy]):
            print(f"{strategy:>11} after stage {stage}: " + "  ".join(f"E{e}={v:5.1f}" for e, v in row.items()))
    for strategy in ("no_update", "oracle"):
        print(f"{strategy:>11} at the last stage: " + "  ".join(f"E{e}={v:5.1f}" for e, v in matrix[strategy].items()))
    print(f"forgetting per earlier episode (pts): {result['forgetting_per_episode_pts']}")
    print(f"driftloop's forgetting, [95% low, point, high] pts per episode: {result['forgetting_interval_pts']}")
    print(f"oracle minus driftloop on the newest episode, [95% low, point, high] pts: {result['gap_interval_pts']}")
    print(f"training seconds: {result['train_seconds']}")
    print(f"training samples/s: {result['samples_per_s']}")
    print(f"driftloop trains {result['trainable_parameters_pct']}% of the model's parameters")


def fmt(row: dict[int, float]) -> dict[int, float]:
    return {episode: round(100 * value, 1) for episode, value in sorted(row.items())}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small subsample: a few minutes")
    parser.add_argument("--seed", type=int, default=7, help="seed of the subsample")
    parser.add_argument("--work", type=Path, default=None, help="keep the candidates here (default: a temp dir)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    size = QUICK if args.quick else FULL
    settings = bench_settings(size, args.seed)
    torch.set_num_threads(settings.torch_threads)
    started = time.perf_counter()
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-") as temp:
        work = args.work or Path(temp)
        for name, build in (("health_news", health_news), ("sentiment_domains", sentiment)):
            results[name] = scenario(name, build(size, args.seed), settings, work)
            log(f"{name}: {json.dumps(results[name], default=str)}")
    int8 = [r.pop("int8") for r in results.values()]
    report = {
        "scenarios": results,
        "int8_size_reduction_pct": round(min(i.size_reduction_pct for i in int8), 1),
        "int8_accuracy_loss_pts": round(max(i.accuracy_loss_pts for i in int8), 2),
        "subsample": {
            "train_per_episode": size.train,
            "holdout_per_episode": size.holdout,
            "max_epochs": size.epochs,
            "seed": args.seed,
        },  # fmt: skip
        "settings": settings.model_dump(mode="json", exclude={"base_model"}),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }
    for name, result in results.items():
        print_tables(name, result)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
