"""The settings tree: file < environment < flags, one-line errors, masked secrets, every field described."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import BaseModel

from daemon.cli import cli, register_commands
from daemon.errors import SettingsError
from daemon.settings import Settings, flatten, load_settings

register_commands()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [name for name in __import__("os").environ if name.startswith("DRIFTLOOP_")]:
        monkeypatch.delenv(name)


def test_file_then_environment_then_flags(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "driftloop.toml"
    config.write_text('home = "from-file"\n[kafka]\ntopic = "file-topic"\nbootstrap = "file:9092"\n')
    assert load_settings().kafka.topic == "file-topic"
    monkeypatch.setenv("DRIFTLOOP_KAFKA_TOPIC", "env-topic")
    monkeypatch.setenv("DRIFTLOOP_INGEST_HOLDOUT_FRACTION", "0.3")
    settings = load_settings(overrides={"kafka": {"bootstrap": "flag:9092"}})
    assert (settings.home, settings.kafka.topic, settings.kafka.bootstrap) == (
        Path("from-file"),
        "env-topic",
        "flag:9092",
    )
    assert settings.ingest.holdout_fraction == 0.3


def test_settings_are_frozen() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.kafka.topic = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--set", "ingest.holdout_fraction=2"],
            "bad setting ingest.holdout_fraction='2': Input should be less than 1",
        ),
        (["--set", "kafka.security_protocol=TLS"], "bad setting kafka.security_protocol='TLS': Input should be"),
        (["--set", "ingest.no_such_key=1"], "unknown setting 'ingest.no_such_key'"),
        (["--set", "justtext"], "--set expects SECTION.KEY=VALUE, got 'justtext'"),
        (["--config", "missing.toml"], "config file missing.toml does not exist"),
    ],
)
def test_bad_value_exits_2_with_one_line(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, [*arguments, "config", "show"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]


def test_bad_environment_value_names_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_INGEST_MAX_TEXT_CHARS", "lots")
    with pytest.raises(SettingsError, match="ingest.max_text_chars='lots'"):
        load_settings()


def test_config_show_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_KAFKA_SASL_PASSWORD", "hunter2")
    result = CliRunner().invoke(cli, ["--home", "h", "config", "show", "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["kafka.sasl_password"] == "********"
    assert shown["home"] == "h"
    assert "hunter2" not in result.output


@pytest.mark.parametrize(
    ("environment", "arguments", "message"),
    [
        ({"DRIFTLOOP_KAFKA_MAX_POLL_INTERVAL_MS": "20000"}, [], "bad setting kafka: Value error, request_timeout_ms"),
        ({}, ["--set", "kafka.sasl_password.x=1"], "bad setting kafka.sasl_password: Input should be a valid string"),
        ({}, ["--set", "kafka.sasl_password=hunter2", "--set", "kafka.unknown=1"], "unknown setting 'kafka.unknown'"),
    ],
)
def test_a_settings_error_never_prints_a_secret(
    environment: dict[str, str], arguments: list[str], message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRIFTLOOP_KAFKA_SASL_PASSWORD", "hunter2")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(cli, [*arguments, "config", "show"])
    assert result.exit_code == 2
    assert message in result.stderr
    assert "hunter2" not in result.output + result.stderr


def leaf_fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str | None]]:
    fields: list[tuple[str, str | None]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields += leaf_fields(annotation, f"{prefix}{name}.")
        else:
            fields.append((f"{prefix}{name}", info.description))
    return fields


def test_every_setting_has_a_description() -> None:
    assert [key for key, description in leaf_fields(Settings) if not description] == []
    assert {key for key, _, _ in flatten(load_settings())} == {key for key, _ in leaf_fields(Settings)}


def test_generation_scores_answers_and_takes_answers_as_labels_unless_told_otherwise(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "driftloop.toml").write_text('[trainer]\ntask_kind = "generation"\n')
    settings = load_settings()
    assert (settings.registry.gate_metric, settings.ingest.max_label_chars) == ("perplexity", 2_000)
    assert settings.drift.output == "answers"
    monkeypatch.setenv("DRIFTLOOP_REGISTRY_GATE_METRIC", "bleu")
    told = load_settings(overrides={"ingest": {"max_label_chars": 500}})
    assert (told.registry.gate_metric, told.ingest.max_label_chars) == ("bleu", 500)
    assert load_settings(overrides={"trainer": {"task_kind": "classification"}, "registry": {"gate_metric": "accuracy"}
                                    }).ingest.max_label_chars == 100  # fmt: skip
    with pytest.raises(SettingsError, match=r"^bad settings: registry.gate_metric=macro_f1 does not score a "
                       r"generation model's output; with trainer.task_kind=generation set it to perplexity, chrf or "
                       r"bleu$"):  # fmt: skip
        load_settings(overrides={"registry": {"gate_metric": "macro_f1"}})
