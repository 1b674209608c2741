"""One generation run: a causal LM's LoRA adapter continued on prompts and answers, then its answers to every
episode's held-out prompts scored against the reference answers, beside the parent's answers before training.

The candidate directory holds `adapter/` (what the next run continues), `model/` (the adapter merged into the
base, with its tokenizer) and, with `trainer.export_int8`, `int8/` (its quantized export, what the service runs with
`registry.int8`). The holdout predictions pair each prompt's reference answer with the candidate's and the parent's
answers and losses on it, so the gate bootstraps the perplexity gain (or chrF's or BLEU's) on the same prompts.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase

from common.text_scores import corpus_score, pooled_perplexity
from trainer.causal_eval import generate
from trainer.causal_examples import encode, response_losses
from trainer.causal_export import export_decoder
from trainer.causal_fit import causal_model, fit_causal
from trainer.data import Row
from trainer.evaluate import Scored, paired_predictions
from trainer.fit import Report, ShouldStop
from trainer.job import Job
from trainer.metrics import backward_transfer, forgetting
from trainer.results import Candidate, EvaluationReport, TextScores
from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)


def causal_candidate(job: Job, report: Report, should_stop: ShouldStop, partial: Path) -> Candidate:
    """A generative model's run, its files written into `partial`."""
    settings, data = job.settings, job.data
    report({"event": "phase", "phase": "setup"})
    model, tokenizer = causal_model(job.base, job.parent, settings)
    model.to(settings.torch_device())
    holdout = data.holdout_by_episode()
    parent = None if job.parent is None else answer_episodes(model, tokenizer, holdout, settings)
    train = [encode(tokenizer, row.text, row.label, settings.max_length) for row in data.train]
    validation = [encode(tokenizer, row.text, row.label, settings.max_length) for row in data.validation]
    report({"event": "phase", "phase": "fit", "train_examples": len(train)})
    stats = fit_causal(model, tokenizer, train, data.train_weights, validation, settings, report, should_stop,
                       continued=job.parent is not None)  # fmt: skip
    report({"event": "phase", "phase": "evaluate"})
    mine = answer_episodes(model, tokenizer, holdout, settings)
    model.save_pretrained(str(partial / "adapter"))
    merged = model.cpu().merge_and_unload()
    merged.save_pretrained(str(partial / "model"))
    tokenizer.save_pretrained(str(partial / "model"))
    if settings.export_int8:
        report({"event": "phase", "phase": "export"})
        try:
            export_decoder(partial / "model", partial / "int8")
        except Exception as exc:  # an architecture the export cannot build: the model is still served, in fp32
            log.warning("the quantized export of %s failed, so the service will answer in fp32: %s",
                        partial / "model", f"{type(exc).__name__}: {exc}".splitlines()[0])  # fmt: skip
            shutil.rmtree(partial / "int8", ignore_errors=True)
    return Candidate(
        path=job.out_dir,
        model_dir=job.out_dir / "model",
        adapter_dir=job.out_dir / "adapter",
        labels=(),
        parent=job.parent,
        report=text_report(mine, parent),
        fit=stats,
        predictions=paired_predictions(holdout, mine, parent),
    )


@torch.no_grad()
def answer_episodes(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    holdout: Mapping[int, Sequence[Row]],
    settings: TrainerSettings,
) -> dict[int, Scored]:
    """The model's greedy answers to every episode's held-out prompts and their scores against the references."""
    pad = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id)
    results = {}
    for episode, rows in holdout.items():
        references = [row.label for row in rows]
        answers = generate(model, tokenizer, [row.text for row in rows], settings.eval_max_new_tokens,
                           settings.eval_batch_size)  # fmt: skip
        examples = [encode(tokenizer, row.text, row.label, settings.max_length) for row in rows]
        losses, counts = response_losses(model, examples, pad, settings.eval_batch_size)
        scores = TextScores(
            rows=len(rows),
            perplexity=pooled_perplexity(losses, counts),
            bleu=corpus_score("bleu", answers, references),
            chrf=corpus_score("chrf", answers, references),
        )
        results[episode] = Scored(tuple(answers), scores, tuple(losses), tuple(counts))
    return results


def text_report(mine: Mapping[int, Scored], parent: Mapping[int, Scored] | None) -> EvaluationReport:
    """Scores per episode; forgetting and backward transfer on chrF / 100. Latency and memory as served are
    measured by the daemon before the gate (the training process still holds the training state)."""
    newest = max(mine)
    before = {} if parent is None else {e: a.scores.headline for e, a in parent.items()}
    after = {e: a.scores.headline for e, a in mine.items()}
    return EvaluationReport(
        newest_episode=newest,
        episodes={e: a.scores for e, a in mine.items()},
        parent_episodes=None if parent is None else {e: a.scores for e, a in parent.items()},
        forgetting=forgetting(before, after, newest),
        backward_transfer=backward_transfer(before, after, newest),
        latency_ms_p50=0.0,
        latency_ms_p99=0.0,
        peak_memory_mb=0.0,
    )
