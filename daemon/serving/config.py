"""What the service process starts with: set in-process with `configure`, or read from the file that
`driftloop serve` writes (readable by its owner only: it may hold the SASL password and the bearer tokens) and
names in `DRIFTLOOP_SERVICE_CONFIG`."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from daemon.errors import DaemonError
from ingest.settings import IngestSettings, KafkaSettings
from registry.settings import RegistrySettings

CONFIG_ENV = "DRIFTLOOP_SERVICE_CONFIG"


class FeedbackSink(Protocol):
    """Sends one checked feedback record on (to Kafka), keyed by its id."""

    def send(self, key: str, value: bytes) -> None: ...


class PredictionSink(Protocol):
    """Publishes a batch of encoded prediction events keyed by prediction id (to Kafka); answers how many were
    taken (the rest are lost) and raises when none could be."""

    def publish(self, events: Sequence[tuple[str, bytes]]) -> int: ...

    def close(self) -> None: ...


class ServiceConfig(BaseModel):
    """The settings sections the service uses; `kafka` None: /feedback answers 503 and the prediction log is off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    registry: RegistrySettings = Field(default_factory=RegistrySettings, description="The registry section.")
    ingest: IngestSettings = Field(
        default_factory=IngestSettings,
        description="The checks /feedback applies; its retry waits pace the prediction log's reconnections.",
    )
    kafka: KafkaSettings | None = Field(
        None, description="Where /feedback sends corrections and the prediction log publishes predictions."
    )
    bentoml_home: Path = Field(description="BentoML home holding the model store.")


_configured: tuple[ServiceConfig, FeedbackSink | None, PredictionSink | None] | None = None


def configure(
    config: ServiceConfig, sink: FeedbackSink | None = None, predictions: PredictionSink | None = None
) -> None:
    """Set what the next service instance in this process starts with (tests, in-process serving): `sink` takes
    /feedback's records, `predictions` the prediction log's events (None: the log is off)."""
    global _configured
    _configured = (config, sink, predictions)


def clear() -> None:
    global _configured
    _configured = None


def write_config(config: ServiceConfig, path: Path) -> Path:
    """Write the configuration, its secrets (SASL password, tokens) in clear, into a file only its owner can read."""
    values = _revealed(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created rw------- already
    with os.fdopen(handle, "w") as out:
        json.dump(values, out, indent=1)
    os.replace(partial, path)
    return path


def _revealed(model: BaseModel) -> dict[str, Any]:
    """The model's JSON values with every secret's value instead of its mask."""
    values = model.model_dump(mode="json")
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, SecretStr):
            values[name] = value.get_secret_value()
        elif isinstance(value, BaseModel):
            values[name] = _revealed(value)
    return values


def configured_in_process() -> bool:
    """True when `configure` set the configuration (tests, in-process serving), not `driftloop serve`."""
    return _configured is not None


def current() -> tuple[ServiceConfig, FeedbackSink | None]:
    """The configured values, else those of the file in $DRIFTLOOP_SERVICE_CONFIG with a Kafka sink."""
    if _configured is not None:
        return _configured[0], _configured[1]
    file = os.environ.get(CONFIG_ENV)
    if not file:
        raise DaemonError(f"no service configuration; start the service with `driftloop serve` (it sets {CONFIG_ENV})")
    try:
        config = ServiceConfig.model_validate_json(Path(file).read_text())
    except OSError as exc:
        raise DaemonError(f"{CONFIG_ENV}={file} cannot be read ({exc.strerror}); start the service with "
                          "`driftloop serve`") from None  # fmt: skip
    except ValidationError as exc:  # described without the values given: they may be secrets
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise DaemonError(f"{CONFIG_ENV}={file} is not a usable service configuration ({where}: {first['msg']}); "
                          "start the service with `driftloop serve`") from None  # fmt: skip
    if config.kafka is None:
        return config, None
    from daemon.serving.feedback import KafkaFeedbackSink

    return config, KafkaFeedbackSink(config.kafka)


def prediction_sink(config: ServiceConfig) -> PredictionSink | None:
    """Where the prediction log publishes: the sink given to `configure`, else the predictions topic when Kafka is
    configured; None (the log is off) when `registry.prediction_log` is off or there is nowhere to publish."""
    if not config.registry.prediction_log:
        return None
    if _configured is not None:
        return _configured[2]
    if config.kafka is None:
        return None
    from daemon.serving.prediction_log import KafkaPredictionSink

    return KafkaPredictionSink(config.kafka, config.registry.prediction_log_timeout_s, config.ingest.retry_initial_s,
                               config.ingest.retry_max_s)  # fmt: skip
