"""Settings of the `registry` section: the promotion gate, approval policy, the model store and the service."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

MIN_TOKEN_CHARS = 16


class RegistrySettings(BaseModel):
    """How candidates are gated, approved, published to BentoML and served."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str = Field(
        "default",
        pattern=r"^[a-z0-9]([a-z0-9_.-]{0,40}[a-z0-9])?$",
        description="Task name; candidates are `driftloop-<task>:<version>`, production `driftloop-<task>-production`.",
    )
    bentoml_home: Path | None = Field(
        None, description="BentoML home holding the model store; empty: `<home>/bentoml`."
    )
    gate_metric: Literal["macro_f1", "accuracy", "perplexity", "chrf", "bleu"] = Field(
        "macro_f1",
        description="Score the gate compares on every episode's holdout: macro_f1 or accuracy of a classifier's "
        "labels; for a generative model, perplexity of the reference answers (its gain is the share by which it "
        "falls; trainer.task_kind=generation sets it unless told otherwise), or chrf or bleu (sacrebleu's, divided "
        "by 100) of its answers against them.",
    )
    gate_margin: float = Field(
        0.01,
        ge=0.0,
        le=1.0,
        description="Least gain of the candidate over production on the newest episode's holdout (0.01 = 1 point).",
    )
    gate_min_holdout_rows: int = Field(
        30,
        ge=1,
        description="Fewest held-out rows of the newest episode (audit labels and full records; corrections are "
        "never held out) the gate judges an improvement on; with fewer the candidate fails and the reason says so.",
    )
    gate_epsilon: float = Field(
        0.02,
        ge=0.0,
        le=1.0,
        description="Most score an earlier episode's holdout may lose against production (forgetting).",
    )
    gate_bootstrap_samples: int = Field(
        1000, ge=100, le=100_000, description="Paired bootstrap resamples of the newest episode's holdout."
    )
    gate_bootstrap_confidence: float = Field(
        0.95,
        gt=0.5,
        lt=1.0,
        description="One-sided confidence of the bootstrap lower bound of the gain, which must be above zero.",
    )
    gate_seed: int = Field(0, description="Seed of the bootstrap resampling (the gate is deterministic).")
    gate_recall_floor: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Least recall of every class on the holdouts (pooled); 0 turns the check off.",
    )
    gate_recall_min_support: int = Field(
        5, ge=1, description="Classes with fewer holdout rows than this are left out of the recall floor."
    )
    gate_latency_p99_ms: float = Field(
        500.0, gt=0.0, description="Most p99 latency of a one-text request to the candidate as served, in milliseconds."
    )
    gate_memory_mb: float = Field(
        2048.0, gt=0.0, description="Most peak memory of a process serving the candidate (its holdout texts), in MiB."
    )
    auto_approve: bool = Field(
        False, description="Promote a candidate that passes the gate without waiting for `driftloop approve`."
    )
    gc_keep_retired: int = Field(
        3,
        ge=0,
        description="`driftloop gc` keeps the candidates of this many most recently retired models (the rollback "
        "target always) and this many superseded production versions; it deletes older ones.",
    )
    gc_rejected_after_days: float = Field(
        14.0,
        ge=0.0,
        description="`driftloop gc` deletes the candidate of a rejected or gate-failed model registered longer ago "
        "than this.",
    )
    poll_interval_s: float = Field(
        0.5, gt=0.0, le=60.0, description="How often the service checks for a new production model."
    )
    max_batch_texts: int = Field(64, ge=1, description="Most texts in one /predict request, prompts in one /generate.")
    max_request_chars: int = Field(
        200_000,
        ge=1,
        description="Most characters of one /predict request's texts, or one /generate request's prompts, together "
        "(the one worker stays free for others).",
    )
    generate_max_new_tokens: int = Field(
        64, ge=1, description="Most tokens of a /generate answer when the request does not say (`max_new_tokens`)."
    )
    generate_max_new_tokens_limit: int = Field(
        256,
        ge=1,
        description="Most `max_new_tokens` one /generate request may ask for; more is refused (the one worker stays "
        "free for others).",
    )
    int8: bool = Field(
        False,
        description="Serve the candidate's INT8 export (`trainer.export_int8`) with ONNX Runtime, without torch; a "
        "model without one is served in fp32. A generative model's export has 8-bit weights and computes in 8-bit "
        "blocks (on by default for trainer.task_kind=generation).",
    )
    predict_batch_size: int = Field(32, ge=1, description="Windows per forward pass when the service predicts.")
    torch_threads: int = Field(
        2, ge=1, description="CPU threads the model may use in the service process (torch, or ONNX Runtime for INT8)."
    )
    host: str = Field("127.0.0.1", description="`driftloop serve`: address the HTTP server listens on.")
    port: int = Field(3000, ge=1, le=65535, description="`driftloop serve`: port the HTTP server listens on.")
    feedback_token: SecretStr | None = Field(
        None,
        min_length=MIN_TOKEN_CHARS,
        description="Bearer token POST /feedback requires (`Authorization: Bearer <token>`); unset: /feedback is "
        "open (a warning at start when the service listens beyond loopback). Masked in `config show`.",
    )
    feedback_token_file: Path | None = Field(
        None,
        description="File holding the /feedback token (its content, stripped), read when the service starts; "
        "instead of `feedback_token`.",
    )
    predict_token: SecretStr | None = Field(
        None,
        min_length=MIN_TOKEN_CHARS,
        description="Bearer token POST /predict and POST /generate require; unset: both are open. Masked in "
        "`config show`; the CLI sends it to the service.",
    )
    predict_token_file: Path | None = Field(
        None,
        description="File holding the /predict and /generate token (its content, stripped), read at start; "
        "instead of `predict_token`.",
    )
    prediction_log: bool = Field(
        True,
        description="The service publishes every prediction (id, text, label, confidence, top probabilities, model "
        "version, time) and every /generate answer (id, prompt, answer, model version, time) to "
        "`kafka.predictions_topic`, in the background; off, or with no Kafka configured, predictions still get an "
        "id but nothing is published.",
    )
    prediction_log_queue: int = Field(
        10_000,
        ge=1,
        description="Most prediction events waiting to be published; when it is full a new event is dropped and "
        'counted (`driftloop_prediction_events_dropped_total{reason="queue_full"}`), /predict never waits.',
    )
    prediction_log_batch: int = Field(500, ge=1, description="Most prediction events published in one batch.")
    prediction_log_top_k: int = Field(
        5, ge=1, description="How many of the most probable labels, with their probability, a prediction event keeps."
    )
    prediction_log_timeout_s: float = Field(
        5.0,
        gt=0.0,
        le=300.0,
        description="How long the prediction log waits for Kafka to connect or to take a batch before its events "
        'count as dropped (`reason="kafka_unavailable"`; delivery may take up to `kafka.request_timeout_ms`), and '
        "the most the service waits at shutdown to publish what is queued.",
    )

    @model_validator(mode="after")
    def _one_source_per_token(self) -> Self:
        for route in ("feedback", "predict"):
            if getattr(self, f"{route}_token") is not None and getattr(self, f"{route}_token_file") is not None:
                raise ValueError(
                    f"{route}_token and {route}_token_file are both set; keep one (the file keeps the token out of "
                    "the environment and the config file)"
                )
        return self

    @model_validator(mode="after")
    def _default_answer_within_the_limit(self) -> Self:
        if self.generate_max_new_tokens > self.generate_max_new_tokens_limit:
            raise ValueError(
                f"generate_max_new_tokens={self.generate_max_new_tokens} is above generate_max_new_tokens_limit="
                f"{self.generate_max_new_tokens_limit}; lower the default or raise the limit"
            )
        return self

    def model_name(self) -> str:
        return f"driftloop-{self.task}"

    def production_name(self) -> str:
        return f"driftloop-{self.task}-production"
