"""Settings of the `kafka` and `ingest` sections."""

from __future__ import annotations

from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator


class KafkaSettings(BaseModel):
    """How driftloop reaches the Kafka cluster that carries the feedback and prediction topics."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap: str = Field(
        "127.0.0.1:9092", description="Comma-separated host:port list of Kafka brokers to bootstrap from."
    )
    topic: str = Field("driftloop-feedback", min_length=1, description="Topic that carries feedback records.")
    predictions_topic: str = Field(
        "driftloop-predictions",
        min_length=1,
        description="Topic the service publishes every prediction to (the prediction log, `registry.prediction_log`).",
    )
    group_id: str = Field("driftloop", min_length=1, description="Consumer group of the ingest consumer.")
    group_instance_id: str = Field(
        "driftloop-ingest-0",
        min_length=1,
        description="Static group membership id: a restarted consumer takes its old place without a rebalance.",
    )
    client_id: str = Field("driftloop", description="Client id sent to the brokers (visible in broker logs).")
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Protocol used to talk to the brokers."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="SASL mechanism when security_protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(None, description="SASL password (masked in `config show`).")
    request_timeout_ms: int = Field(
        15_000, ge=1_000, description="How long a request to a broker may take before it is retried."
    )
    session_timeout_ms: int = Field(
        10_000, ge=1_000, description="Consumer group session timeout; a silent member is dropped after it."
    )
    max_poll_interval_ms: int = Field(
        5_000,
        ge=1_000,
        description="Rebalance timeout of the consumer group (also the longest pause between polls).",
    )

    @model_validator(mode="after")
    def _join_fits_in_a_request(self) -> Self:
        if self.request_timeout_ms < self.max_poll_interval_ms:
            raise ValueError(
                f"request_timeout_ms ({self.request_timeout_ms}) must be at least max_poll_interval_ms "
                f"({self.max_poll_interval_ms}): a group join can wait that long for its answer"
            )
        return self

    @model_validator(mode="after")
    def _predictions_apart_from_feedback(self) -> Self:
        if self.predictions_topic == self.topic:
            raise ValueError(
                f"predictions_topic is the feedback topic ({self.topic!r}): every prediction would be read as a "
                "feedback record without a label and rejected; give the prediction log a topic of its own"
            )
        return self


class IngestSettings(BaseModel):
    """How feedback is validated, cleaned and written into the store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_max_records: int = Field(20_000, ge=1, description="Most records written to DuckDB in one transaction.")
    duckdb_threads: int = Field(
        1, ge=1, description="Threads DuckDB may use for checking and writing batches; the Kafka client needs the rest."
    )
    poll_timeout_ms: int = Field(500, ge=10, description="How long one poll waits for records before an idle round.")
    max_text_chars: int = Field(
        20_000,
        ge=1,
        description="Longest accepted text, in characters after cleaning; longer texts are rejected.",
    )
    max_id_chars: int = Field(200, ge=1, description="Longest accepted record id, in characters.")
    max_label_chars: int = Field(
        100,
        ge=1,
        description="Longest accepted label, in characters (trainer.task_kind=generation: an answer, and 2000 unless "
        "set).",
    )
    max_record_bytes: int = Field(
        1_000_000, ge=1_024, description="Largest accepted Kafka value, in bytes; larger values are rejected."
    )
    rejected_raw_cap_bytes: int = Field(
        4_096, ge=0, description="How many bytes of a rejected record's raw value are kept in `rejected`."
    )
    holdout_fraction: float = Field(
        0.2,
        ge=0.0,
        lt=1.0,
        description="Share of `label` records put in the holdout split, chosen by a hash of the id (`audit` records "
        "are always held out, corrections and confirmations never).",
    )
    unmatched_feedback_s: float = Field(
        3600.0,
        gt=0.0,
        description=(
            "How long feedback by `prediction_id` waits for its prediction in the prediction log: it is rejected "
            "with the reason once the log has been read this far past the feedback's time, or has stayed silent "
            "this long while it waited."
        ),
    )
    prediction_text_days: float = Field(
        30.0,
        gt=0.0,
        description=(
            "How long the prediction log keeps each served text; after that the row keeps its length, hash, "
            "prediction and confidence, and feedback by its id must carry the text."
        ),
    )
    prediction_days: float = Field(
        400.0, gt=0.0, description="How long the prediction log keeps a served prediction's row at all."
    )
    offset_out_of_range: Literal["fail", "earliest", "latest"] = Field(
        "fail",
        description=(
            "What to do when an offset stored in DuckDB no longer points where the store read up to (beyond the "
            "partition's end, after a record that is not the one stored, or before its start: a recreated topic or "
            "retention): fail (stop with an error), earliest or latest (log it as an error and restart there)."
        ),
    )
    retry_initial_s: float = Field(
        0.5, gt=0.0, description="First wait before retrying an unreachable broker; doubles on every failure."
    )
    retry_max_s: float = Field(30.0, gt=0.0, description="Longest wait between retries of an unreachable broker.")
    lag_interval_s: float = Field(
        10.0, gt=0.0, description="How often the consumer asks Kafka for partition ends to report its lag."
    )
    idle_exit_s: float = Field(3.0, gt=0.0, description="`ingest --once`: exit after this long with no new records.")


class AuditSettings(BaseModel):
    """The random sample of served predictions that a reviewer labels: the unbiased measure of the served model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_rate: float = Field(
        0.03,
        ge=0.0,
        le=1.0,
        description="Share of served predictions drawn for review (by a hash of the prediction id, so the sample "
        "is random and stable); `driftloop audit export` writes those not labelled yet.",
    )
    accuracy_window: int = Field(
        2_000,
        ge=1,
        description="Newest served predictions of the production model that its estimated accuracy averages over "
        "(and newest audit labels its audited accuracy counts).",
    )
