"""One run in this process, top to bottom: setup → fit → save → evaluate → rename into place."""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from pathlib import Path

import torch

from trainer.calibration import fit_temperature
from trainer.errors import BadTrainingData, ModelLoadError, TrainerError
from trainer.evaluate import evaluate, predict_episodes
from trainer.fit import Report, ShouldStop, fit, prepare
from trainer.job import Job
from trainer.model import load_tokenizer, read_labels, save_candidate_model, setup_model
from trainer.predict import Classifier, logits
from trainer.results import Candidate, write_candidate

log = logging.getLogger(__name__)


def partial_dir_for(out_dir: Path) -> Path:
    return out_dir.with_name(f".{out_dir.name}.partial")


def run_job(job: Job, report: Report, should_stop: ShouldStop) -> Candidate:
    """Train, evaluate and write the candidate; nothing appears at `job.out_dir` unless all of it succeeded."""
    settings, data, out_dir = job.settings, job.data, job.out_dir
    if out_dir.exists():
        raise TrainerError(f"{out_dir} already exists; give every run its own output directory")
    if not data.holdout:
        raise BadTrainingData("the run has no holdout rows, so the candidate cannot be evaluated")
    torch.set_num_threads(settings.torch_threads)
    partial = partial_dir_for(out_dir)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        if settings.task_kind == "generation":
            from trainer.causal_pipeline import causal_candidate

            candidate = causal_candidate(job, report, should_stop, partial)
        else:
            candidate = classifier_candidate(job, report, should_stop, partial)
        write_candidate(partial, candidate)
        os.rename(partial, out_dir)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    evaluation = candidate.report
    log.info(
        "candidate %s: newest-episode score %.4f", out_dir, evaluation.episodes[evaluation.newest_episode].headline
    )
    return candidate


def classifier_candidate(job: Job, report: Report, should_stop: ShouldStop, partial: Path) -> Candidate:
    """A sequence classifier's run, its files written into `partial`."""
    settings, data, out_dir = job.settings, job.data, job.out_dir
    report({"event": "phase", "phase": "setup"})
    tokenizer = load_tokenizer(job.base)
    model, labels = setup_model(settings, job.base, job.parent, data.labels)
    _check_length(model, settings.max_length)
    model.to(settings.torch_device())
    parent = None
    if job.parent is not None:
        live = Classifier(model.eval(), tokenizer, labels, settings.max_length, settings.stride,
                          settings.eval_batch_size)  # fmt: skip
        parent = predict_episodes(live, data.holdout_by_episode(), allowed=len(read_labels(job.parent)))
    validation = ([row.text for row in data.validation], [row.label for row in data.validation])
    texts, targets = [r.text for r in data.train], [r.label for r in data.train]
    fit_data = prepare(tokenizer, settings, texts, targets, labels, validation, data.train_weights)
    report({"event": "phase", "phase": "fit", "train_windows": len(fit_data.targets), "labels": list(labels)})
    stats = fit(model, tokenizer, fit_data, settings, labels, report, should_stop, continued=job.parent is not None)
    report({"event": "phase", "phase": "evaluate"})
    live = Classifier(model.eval(), tokenizer, labels, settings.max_length, settings.stride,
                      settings.eval_batch_size)  # fmt: skip
    # Calibrated on the held-out rows, not the validation rows: those are drawn from what is trained on (users'
    # corrections, which the model got wrong by construction); held out are audit labels and full records. One
    # temperature changes no prediction, so the gate's scores on these rows are unchanged.
    held_out = data.holdout
    temperature = fit_temperature(logits(live, [row.text for row in held_out]),
                                  [labels.index(row.label) for row in held_out])  # fmt: skip
    report({"event": "calibrated", "temperature": round(temperature, 4)})
    save_candidate_model(model.cpu(), tokenizer, labels, settings, partial, temperature)
    int8_dir = partial / "int8" if settings.export_int8 else None
    evaluation, predictions = evaluate(partial / "model", data, parent, settings.latency_samples, int8_dir)
    if evaluation.int8 is not None:
        evaluation = dataclasses.replace(evaluation, int8=dataclasses.replace(evaluation.int8, path="int8"))
    return Candidate(
        path=out_dir,
        model_dir=out_dir / "model",
        adapter_dir=out_dir / "adapter" if settings.method == "lora" else None,
        labels=labels,
        parent=job.parent,
        report=evaluation,
        fit=stats,
        predictions=predictions,
    )


def _check_length(model: torch.nn.Module, max_length: int) -> None:
    positions = getattr(model.config, "max_position_embeddings", None)
    if isinstance(positions, int) and max_length > positions:
        raise ModelLoadError(
            f"trainer.max_length={max_length} is longer than the model's {positions} positions; lower it"
        )
