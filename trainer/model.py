"""Loading the base model, starting or continuing a LoRA adapter, growing the head, saving a candidate."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from peft import LoraConfig, PeftModel, TaskType, get_peft_model
from transformers import AutoModelForSequenceClassification, AutoTokenizer, PreTrainedTokenizerBase
from transformers.utils import logging as hf_logging

from trainer.errors import ModelLoadError
from trainer.model_info import LABELS_FILE
from trainer.settings import TrainerSettings

log = logging.getLogger(__name__)

ADAPTER_CONFIG = "adapter_config.json"


def load_tokenizer(path: Path) -> PreTrainedTokenizerBase:
    if not (path / "tokenizer.json").is_file() and not (path / "vocab.txt").is_file():
        raise ModelLoadError(f"{path} has no tokenizer (tokenizer.json or vocab.txt); point trainer.base_model at one")
    tokenizer: PreTrainedTokenizerBase = AutoTokenizer.from_pretrained(path)
    return tokenizer


def load_classifier_model(path: Path, labels: Sequence[str]) -> torch.nn.Module:
    """A sequence classifier with one output per label; a head missing from the checkpoint starts random."""
    if not (path / "config.json").is_file():
        raise ModelLoadError(f"{path} is not a Hugging Face model directory (no config.json)")
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model: torch.nn.Module = AutoModelForSequenceClassification.from_pretrained(
        path,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    return model


def read_labels(model_dir: Path) -> tuple[str, ...]:
    """The labels a candidate's model, adapter or INT8 directory was trained on, in head order."""
    path = model_dir / LABELS_FILE
    if not path.is_file():
        raise ModelLoadError(f"{model_dir} has no {LABELS_FILE}; it was not written by driftloop's trainer")
    labels: list[str] = json.loads(path.read_text())["labels"]
    return tuple(labels)


def write_labels(model_dir: Path, labels: Sequence[str], settings: TrainerSettings, **extra: Any) -> None:
    info = {"labels": list(labels), "max_length": settings.max_length, "stride": settings.stride, **extra}
    (model_dir / LABELS_FILE).write_text(json.dumps(info, indent=1))


def setup_model(
    settings: TrainerSettings, base: Path, parent: Path | None, labels: Sequence[str]
) -> tuple[torch.nn.Module, tuple[str, ...]]:
    """The model to train and its label order: the parent's labels first, then new ones (sorted)."""
    torch.manual_seed(settings.seed)
    if parent is None:
        order = tuple(sorted(set(labels)))
        model = load_classifier_model(base, order)
        return _prepare_fresh(model, settings), order
    is_adapter = (parent / ADAPTER_CONFIG).is_file()
    if is_adapter != (settings.method == "lora"):
        kind = "a LoRA adapter" if is_adapter else "a full model"
        raise ModelLoadError(f"parent {parent} is {kind}, which trainer.method={settings.method!r} cannot continue")
    old = read_labels(parent)
    order = (*old, *sorted(set(labels) - set(old)))
    if is_adapter:
        peft_model = PeftModel.from_pretrained(load_classifier_model(base, old), parent, is_trainable=True)
        grow_head(peft_model, len(old), order)
        return peft_model, order
    model = load_classifier_model(parent, old)
    grow_head(model, len(old), order)
    _freeze_lower_layers(model, settings.freeze_layers)
    return model, order


def _prepare_fresh(model: torch.nn.Module, settings: TrainerSettings) -> torch.nn.Module:
    if settings.method == "full":
        _freeze_lower_layers(model, settings.freeze_layers)
        return model
    config = LoraConfig(
        task_type=TaskType.SEQ_CLS,
        r=settings.lora_r,
        lora_alpha=settings.lora_alpha,
        lora_dropout=settings.lora_dropout,
        target_modules=list(settings.target_modules()),
        modules_to_save=list(settings.modules_to_save),
    )
    peft_model: torch.nn.Module = get_peft_model(model, config)
    return peft_model


def _freeze_lower_layers(model: torch.nn.Module, count: int) -> None:
    if count == 0:
        return
    encoder = getattr(model, "base_model", model)
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    embeddings = getattr(encoder, "embeddings", None)
    if layers is None or embeddings is None:
        raise ModelLoadError("trainer.freeze_layers needs a BERT-like model (embeddings + encoder.layer); set it to 0")
    for module in [embeddings, *list(layers)[:count]]:
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def grow_head(model: torch.nn.Module, old_count: int, labels: Sequence[str]) -> None:
    """Give the classification head one output per label; the old classes' rows keep their weights."""
    new_count = len(labels)
    config: Any = model.config
    config.num_labels = new_count
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    if new_count == old_count:
        return
    heads = [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and module.out_features == old_count
        and any(part in ("classifier", "score", "out_proj") for part in name.split("."))
    ]
    if not heads:
        raise ModelLoadError(f"no classification head with {old_count} outputs was found to grow to {new_count}")
    std = float(getattr(config, "initializer_range", 0.02))
    for name in heads:
        owner_name, _, attribute = name.rpartition(".")
        owner = model.get_submodule(owner_name)
        old: torch.nn.Linear = getattr(owner, attribute)
        grown = torch.nn.Linear(old.in_features, new_count, bias=old.bias is not None)
        with torch.no_grad():
            grown.weight.normal_(0.0, std)
            grown.weight[:old_count] = old.weight
            if old.bias is not None and grown.bias is not None:
                grown.bias.zero_()
                grown.bias[:old_count] = old.bias
        grown.weight.requires_grad_(old.weight.requires_grad)
        if grown.bias is not None:
            grown.bias.requires_grad_(old.weight.requires_grad)
        setattr(owner, attribute, grown)
    for wrapped in model.modules():
        if hasattr(wrapped, "num_labels"):
            cast(Any, wrapped).num_labels = new_count
    log.info("grew the head from %d to %d labels (%s)", old_count, new_count, ", ".join(labels[old_count:]))


def save_candidate_model(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    labels: Sequence[str],
    settings: TrainerSettings,
    dest: Path,
    temperature: float = 1.0,
) -> tuple[Path, Path | None]:
    """Save the adapter (LoRA) and the merged model, with the temperature its probabilities are calibrated by;
    returns (model_dir, adapter_dir)."""
    adapter_dir: Path | None = None
    if isinstance(model, PeftModel):
        adapter_dir = dest / "adapter"
        model.save_pretrained(str(adapter_dir))
        write_labels(adapter_dir, labels, settings)
        model = model.merge_and_unload()
    model_dir = dest / "model"
    model.save_pretrained(model_dir)  # type: ignore[operator]
    tokenizer.save_pretrained(model_dir)
    write_labels(model_dir, labels, settings, temperature=temperature)
    return model_dir, adapter_dir
