"""The one settings tree: `driftloop.toml`, then `DRIFTLOOP_...` environment variables, then CLI flags."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from daemon.daemon_settings import DaemonSettings
from daemon.errors import SettingsError
from drift.settings import DriftSettings
from ingest.settings import AuditSettings, IngestSettings, KafkaSettings
from registry.settings import RegistrySettings
from trainer.settings import TrainerSettings

DEFAULT_CONFIG_FILE = Path("driftloop.toml")
# What trainer.task_kind=generation changes elsewhere, unless set: the gate scores answers, a label is an answer,
# drift watches how much of each answer users rewrite, and the service answers with the quantized export (fp32 takes
# four times the guide's 500 ms for 32 tokens here, the export under 400 ms within noise of its quality:
# trainer.causal_export).
GENERATION_DEFAULTS: dict[str, dict[str, Any]] = {
    "trainer": {"export_int8": True},
    "registry": {"gate_metric": "perplexity", "int8": True},
    "ingest": {"max_label_chars": 2_000},
    "drift": {"output": "answers"},
}
GENERATION_GATE_METRICS = ("perplexity", "chrf", "bleu")
SECRET_WORDS = ("password", "secret", "token")  # a setting whose key holds one of these is never printed
_config_file: ContextVar[Path | None] = ContextVar("driftloop_config_file", default=None)


class LogSettings(BaseModel):
    """How the process logs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    level: str = Field("INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$", description="Log level of driftloop's loggers.")
    json_lines: bool = Field(False, description="Log one JSON object per line instead of plain text.")


class Settings(BaseSettings):
    """Everything driftloop can be told; each component receives only its own section."""

    model_config = SettingsConfigDict(
        env_prefix="DRIFTLOOP_",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        frozen=True,
        extra="forbid",
    )

    home: Path = Field(
        Path(".driftloop"),
        description="Home directory: the DuckDB file, the BentoML home and the run folders.",
    )
    kafka: KafkaSettings = Field(default_factory=KafkaSettings, description="Kafka connection.")
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="Validation and storage of feedback.")
    drift: DriftSettings = Field(default_factory=DriftSettings, description="Drift detection.")
    audit: AuditSettings = Field(default_factory=AuditSettings, description="The audit sample of served traffic.")
    trainer: TrainerSettings = Field(default_factory=TrainerSettings, description="Fine-tuning.")
    registry: RegistrySettings = Field(default_factory=RegistrySettings, description="Gate, model store and service.")
    daemon: DaemonSettings = Field(default_factory=DaemonSettings, description="The long-running process.")
    log: LogSettings = Field(default_factory=LogSettings, description="Logging.")

    @model_validator(mode="before")
    @classmethod
    def _generation_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or _value(data.get("trainer"), "task_kind") != "generation":
            return data
        data = dict(data)
        for section, defaults in GENERATION_DEFAULTS.items():
            given = data.get(section)
            for key, value in defaults.items():
                if isinstance(given, BaseModel) and key not in given.model_fields_set:
                    given = given.model_copy(update={key: value})
                elif isinstance(given, Mapping) and key not in given:
                    given = {**given, key: value}
                elif given is None:
                    given = {key: value}
            data[section] = given
        return data

    @model_validator(mode="after")
    def _gate_scores_what_the_model_gives(self) -> Settings:
        generation = self.trainer.task_kind == "generation"
        if generation != (self.registry.gate_metric in GENERATION_GATE_METRICS):
            allowed = "perplexity, chrf or bleu" if generation else "macro_f1 or accuracy"
            raise ValueError(
                f"registry.gate_metric={self.registry.gate_metric} does not score a {self.trainer.task_kind} model's "
                f"output; with trainer.task_kind={self.trainer.task_kind} set it to {allowed}"
            )
        return self

    @property
    def store_path(self) -> Path:
        return self.home / "driftloop.duckdb"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: tuple[PydanticBaseSettingsSource, ...] = (init_settings, env_settings)
        config_file = _config_file.get()
        if config_file is not None:
            sources += (TomlConfigSettingsSource(settings_cls, toml_file=config_file),)
        return sources


def _value(section: Any, key: str) -> Any:
    """`key` of a settings section given as a model or as a mapping (from a file, the environment or flags)."""
    if isinstance(section, BaseModel):
        return getattr(section, key, None)
    return section.get(key) if isinstance(section, Mapping) else None


def load_settings(config_file: Path | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Resolve the settings; `overrides` (from CLI flags) win over the environment, which wins over the file.

    Raises SettingsError with one line naming the key, the value given and what is allowed.
    """
    if config_file is None and DEFAULT_CONFIG_FILE.is_file():
        config_file = DEFAULT_CONFIG_FILE
    if config_file is not None and not config_file.is_file():
        raise SettingsError(f"config file {config_file} does not exist; create it or drop --config")
    token = _config_file.set(config_file)
    try:
        return Settings(**dict(overrides or {}))
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc)) from None
    finally:
        _config_file.reset(token)


def describe_validation_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown setting {key!r}; `driftloop config show` lists every setting"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    if not key:  # a check across sections: its message names the keys
        return f"bad settings: {first['msg'].removeprefix('Value error, ')}{more}"
    given = first["input"]
    if isinstance(given, Mapping):  # a whole section (a check across its fields): its values may hold secrets
        return f"bad setting {key}: {first['msg']}{more}"
    if any(word in key for word in SECRET_WORDS):
        given = "********"
    return f"bad setting {key}={given!r}: {first['msg']}{more}"


def parse_assignment(assignment: str) -> dict[str, Any]:
    """Turn `section.key=value` into a nested dict for `load_settings(overrides=...)`."""
    key, sep, value = assignment.partition("=")
    if not sep or not key.strip():
        raise SettingsError(f"--set expects SECTION.KEY=VALUE, got {assignment!r}")
    nested: dict[str, Any] = {}
    node = nested
    *parents, leaf = key.strip().split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return nested


def merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Deep-merge `extra` into a copy of `base`."""
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def flatten(settings: BaseModel, prefix: str = "") -> Iterator[tuple[str, Any, str]]:
    """Every leaf setting as (dotted key, value with secrets masked, description)."""
    for name, field in type(settings).model_fields.items():
        value = getattr(settings, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            yield from flatten(value, f"{key}.")
        else:
            shown = "********" if isinstance(value, SecretStr) else value
            yield key, shown, field.description or ""
