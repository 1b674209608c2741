"""What the BentoML service is started with: set in-process with `configure`, or read from a JSON file named by
the `DRIFTLOOP_SERVICE_CONFIG` environment variable (how `driftloop serve` hands it to `bentoml serve`)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from registry.errors import ServiceConfigError
from registry.settings import RegistrySettings

CONFIG_ENV = "DRIFTLOOP_SERVICE_CONFIG"

FeedbackSink = Callable[[dict[str, Any]], None]
"""Sends one correction on (to Kafka); raises ValueError for a record it refuses (the service answers 400)."""


class ServiceConfig(BaseModel):
    """Everything the service process needs; `feedback_sink` names a `module:function` building the sink."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    registry: RegistrySettings = Field(default_factory=RegistrySettings, description="The registry section.")
    bentoml_home: Path = Field(description="BentoML home holding the model store.")
    feedback_sink: str | None = Field(
        None, description="`module:function` that takes `feedback_sink_config` and returns the feedback sink."
    )
    feedback_sink_config: dict[str, Any] = Field(
        default_factory=dict, description="Argument of the feedback sink factory."
    )


_configured: tuple[ServiceConfig, FeedbackSink | None] | None = None


def configure(config: ServiceConfig, sink: FeedbackSink | None = None) -> None:
    """Set what the next service instance in this process starts with (tests, in-process serving)."""
    global _configured
    _configured = (config, sink)


def write_config(config: ServiceConfig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config.model_dump_json(indent=1))
    return path


def current() -> tuple[ServiceConfig, FeedbackSink | None]:
    """The configured values, else those of the file in $DRIFTLOOP_SERVICE_CONFIG (its sink built from its name)."""
    if _configured is not None:
        return _configured
    file = os.environ.get(CONFIG_ENV)
    if not file:
        raise ServiceConfigError(f"no service configuration; start it with `driftloop serve` or set {CONFIG_ENV}")
    try:
        config = ServiceConfig.model_validate_json(Path(file).read_text())
    except (OSError, ValidationError) as exc:
        raise ServiceConfigError(f"{CONFIG_ENV}={file} is not a usable service configuration: {exc}") from None
    return config, build_sink(config)


def build_sink(config: ServiceConfig) -> FeedbackSink | None:
    if config.feedback_sink is None:
        return None
    module_name, _, attribute = config.feedback_sink.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ServiceConfigError(f"feedback_sink {config.feedback_sink!r} cannot be imported: {exc}") from None
    sink: FeedbackSink = factory(config.feedback_sink_config)
    return sink
