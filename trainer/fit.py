"""The training loop: length-grouped batches, AdamW with warmup, accumulation, label smoothing, early stopping.

The loop (`train`) is the same for every task; an `Objective` says what a batch's loss and a validation score are.
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from transformers import PreTrainedTokenizerBase

from trainer.errors import TrainingCancelled
from trainer.metrics import score_predictions
from trainer.results import FitStats
from trainer.settings import TrainerSettings
from trainer.windows import Windows, collate, make_windows, predict_texts

log = logging.getLogger(__name__)

Report = Callable[[dict[str, Any]], None]
ShouldStop = Callable[[], bool]
GROUP = 50  # batches whose windows are sorted by length together


@dataclass(frozen=True)
class FitData:
    windows: Windows
    targets: tuple[int, ...]  # one class index per window
    weights: tuple[float, ...]  # the loss weight of each window (its row's)
    validation_texts: tuple[str, ...]
    validation_labels: tuple[str, ...]


def prepare(
    tokenizer: PreTrainedTokenizerBase,
    settings: TrainerSettings,
    texts: Sequence[str],
    labels: Sequence[str],
    label_order: Sequence[str],
    validation: tuple[Sequence[str], Sequence[str]],
    weights: Sequence[float] | None = None,
) -> FitData:
    """Windows and targets of the training texts; `weights`: each text's loss weight (default 1)."""
    index = {label: i for i, label in enumerate(label_order)}
    windows = make_windows(tokenizer, texts, settings.max_length, settings.stride)
    targets = tuple(index[labels[owner]] for owner in windows.owner)
    per_window = tuple(1.0 if weights is None else weights[owner] for owner in windows.owner)
    return FitData(windows, targets, per_window, tuple(validation[0]), tuple(validation[1]))


def length_grouped_batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar-length windows (little padding), in shuffled order."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    batches: list[list[int]] = []
    span = batch_size * GROUP
    for start in range(0, len(order), span):
        group = sorted(order[start : start + span], key=lambda i: lengths[i])
        batches.extend(group[i : i + batch_size] for i in range(0, len(group), batch_size))
    rng.shuffle(batches)
    return batches


def make_optimizer(model: torch.nn.Module, settings: TrainerSettings) -> torch.optim.AdamW:
    """AdamW: the head (modules_to_save) at `head_learning_rate`, the rest at `learning_rate`; no weight decay on
    biases and norms. The first group is the body's weights, whose rate the progress reports."""
    groups: dict[tuple[bool, bool], list[torch.nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        is_head = any(part in settings.modules_to_save for part in name.split("."))
        is_plain = parameter.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
        groups.setdefault((is_head, is_plain), []).append(parameter)
    return torch.optim.AdamW(
        [
            {
                "params": parameters,
                "lr": settings.head_learning_rate if is_head else settings.learning_rate,
                "weight_decay": 0.0 if is_plain else settings.weight_decay,
            }
            for (is_head, is_plain), parameters in sorted(groups.items())
        ]
    )


def warmup_linear(total_steps: int, warmup_ratio: float) -> Callable[[int], float]:
    warmup = max(1, math.ceil(total_steps * warmup_ratio))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup))

    return factor


class Objective(Protocol):
    """What the loop trains for: per-example lengths (batches group similar ones), the weighted loss of a batch,
    and the validation score that picks the best epoch."""

    metric: str  # the validation score's name, e.g. macro_f1 or perplexity
    lower_is_better: bool

    def lengths(self) -> Sequence[int]: ...

    def loss(self, batch: Sequence[int], denominator: int) -> torch.Tensor: ...

    def validate(self) -> float: ...


@dataclass
class ClassifierObjective:
    """Cross-entropy with label smoothing on windows, each weighted by its row; validation macro-F1."""

    model: torch.nn.Module
    tokenizer: PreTrainedTokenizerBase
    data: FitData
    settings: TrainerSettings
    labels: Sequence[str]
    metric: str = "macro_f1"
    lower_is_better: bool = False

    def lengths(self) -> Sequence[int]:
        return [len(window) for window in self.data.windows.input_ids]

    def loss(self, batch: Sequence[int], denominator: int) -> torch.Tensor:
        device = next(self.model.parameters()).device
        pad_id = int(self.tokenizer.pad_token_id) if self.tokenizer.pad_token_id is not None else 0
        inputs = collate([self.data.windows.input_ids[i] for i in batch], pad_id, device)
        target = torch.tensor([self.data.targets[i] for i in batch], device=device)
        weight = torch.tensor([self.data.weights[i] for i in batch], device=device)
        losses = torch.nn.functional.cross_entropy(
            self.model(**inputs).logits, target, label_smoothing=self.settings.label_smoothing, reduction="none"
        )
        return (losses * weight).sum() / denominator

    def validate(self) -> float:
        self.model.eval()
        settings = self.settings
        logits = predict_texts(self.model, self.tokenizer, self.data.validation_texts, settings.max_length,
                               settings.stride, settings.eval_batch_size)  # fmt: skip
        predicted = [self.labels[i] for i in logits.argmax(dim=1).tolist()]
        self.model.train()
        return score_predictions(self.data.validation_labels, predicted, self.labels).macro_f1


def fit(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    data: FitData,
    settings: TrainerSettings,
    labels: Sequence[str],
    report: Report,
    should_stop: ShouldStop,
    continued: bool = False,
) -> FitStats:
    """Train a classifier in place (see `train`)."""
    objective = ClassifierObjective(model, tokenizer, data, settings, labels)
    return train(model, objective, settings, report, should_stop, continued)


def train(
    model: torch.nn.Module,
    objective: Objective,
    settings: TrainerSettings,
    report: Report,
    should_stop: ShouldStop,
    continued: bool = False,
) -> FitStats:
    """Train in place; at the end the model holds the weights of the best validation epoch. `continued`: the
    model starts from a parent's weights (with `decay_toward_parent`, weight decay pulls toward them)."""
    rng = random.Random(settings.seed)
    lengths = objective.lengths()
    batches_per_epoch = math.ceil(len(lengths) / settings.batch_size)
    steps_per_epoch = math.ceil(batches_per_epoch / settings.grad_accumulation)
    optimizer = make_optimizer(model, settings)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, warmup_linear(steps_per_epoch * settings.max_epochs, settings.warmup_ratio)
    )
    trainable = [p for p in model.parameters() if p.requires_grad]
    sign = -1.0 if objective.lower_is_better else 1.0
    best, best_epoch, best_state, since_best = -math.inf, 0, _snapshot(model), 0
    anchors = decay_anchors(optimizer) if continued and settings.decay_toward_parent else []
    curve: list[float] = []
    losses: list[float] = []
    norms: list[float] = []
    step, seen, busy = 0, 0, 0.0
    model.train()
    epoch = 0
    for epoch in range(1, settings.max_epochs + 1):
        batches = length_grouped_batches(lengths, settings.batch_size, rng)
        for first in range(0, len(batches), settings.grad_accumulation):
            group = batches[first : first + settings.grad_accumulation]
            if should_stop():
                raise TrainingCancelled(f"cancelled at epoch {epoch}, step {step}")
            started = time.perf_counter()
            examples_in_group = sum(len(batch) for batch in group)
            total = 0.0
            for batch in group:
                loss = objective.loss(batch, examples_in_group)
                loss.backward()  # type: ignore[no-untyped-call]
                total += float(loss.detach())
            norm = float(torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm))
            optimizer.step()
            pull_toward_anchors(anchors)
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
            busy += time.perf_counter() - started
            step += 1
            seen += examples_in_group
            losses.append(total)
            norms.append(norm)
            if step % settings.log_every_steps == 0:
                report({"event": "progress", "epoch": epoch, "step": step, "loss": total, "grad_norm": norm,
                        "lr": schedule.get_last_lr()[0], "samples_per_s": seen / busy})  # fmt: skip
        current = objective.validate()
        curve.append(current)
        report(
            {"event": "validation", "epoch": epoch, "step": step, "metric": objective.metric, objective.metric: current}
        )
        if sign * current > best:
            best, best_epoch, best_state, since_best = sign * current, epoch, _snapshot(model), 0
        else:
            since_best += 1
            if since_best >= settings.patience:
                log.info("early stop after epoch %d: no better validation %s for %d epochs", epoch, objective.metric,
                         since_best)  # fmt: skip
                break
    _restore(model, best_state)
    return FitStats(
        epochs=epoch,
        best_epoch=best_epoch,
        steps=step,
        stopped_early=epoch < settings.max_epochs,
        train_windows=len(lengths),
        train_seconds=busy,
        samples_per_s=seen / busy if busy else 0.0,
        best_validation=sign * best,
        validation_curve=tuple(curve),
        loss_curve=tuple(losses),
        grad_norm_curve=tuple(norms),
        trainable_parameters=sum(p.numel() for p in trainable),
        total_parameters=sum(p.numel() for p in model.parameters()),
        validation_metric=objective.metric,
    )


Anchor = tuple[torch.Tensor, torch.Tensor, dict[str, Any]]  # parameter, its starting value, its optimizer group


def decay_anchors(optimizer: torch.optim.Optimizer) -> list[Anchor]:
    """Every decayed parameter with a copy of its value now (the start of the run) and its group."""
    return [
        (parameter, parameter.detach().clone(), group)
        for group in optimizer.param_groups
        if group["weight_decay"]
        for parameter in group["params"]
    ]


@torch.no_grad()
def pull_toward_anchors(anchors: Sequence[Anchor]) -> None:
    """AdamW's step shrank each weight by lr·wd·w (toward zero); adding lr·wd·anchor makes it lr·wd·(w - anchor),
    a decay toward the weights the run started from (L2-SP)."""
    for parameter, anchor, group in anchors:
        parameter.add_(anchor, alpha=group["lr"] * group["weight_decay"])


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def _restore(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            parameters[name].copy_(value)
    model.eval()
