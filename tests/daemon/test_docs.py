"""README.md and docs/ cannot fall behind the code: generated settings, real commands, metric names really served."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from daemon import settings_doc
from daemon.cli import cli, register_commands
from daemon.loop.metrics import StatusCollector
from daemon.loop.store import open_store
from daemon.reports.status import collect_status
from daemon.settings import Settings
from registry.metrics import service_metrics
from tests.daemon.test_settings import leaf_fields

ROOT = Path(__file__).resolve().parents[2]
TEXTS = {path.name: path.read_text(encoding="utf-8") for path in [ROOT / "README.md", *(ROOT / "docs").glob("*.md")]}
CODE = re.compile(r"```.*?```|`[^`\n]+`", re.DOTALL)
# `driftloop` and the lowercase words after it; a word touching a digit, dot or `=` is an argument, not a command.
COMMAND = re.compile(r"(?<![\w./-])driftloop((?:[ \t]+[a-z][a-z-]*(?![\w./=:-]))*)")
METRIC = re.compile(r"\bdriftloop_[a-z0-9]+(?:_[a-z0-9]+)*")
register_commands()


def command_words(words: list[str]) -> tuple[str, ...]:
    """The words that name a command: the rest, after a command that is not a group, are its arguments."""
    node: click.Command | None = cli
    taken: list[str] = []
    for word in words:
        if not isinstance(node, click.Group):
            break
        taken.append(word)
        node = node.commands.get(word)
    return tuple(taken)


def documented_commands() -> dict[tuple[str, ...], str]:
    """Each command named in inline code or a code block, with a file that names it."""
    found: dict[tuple[str, ...], str] = {}
    for name, text in TEXTS.items():
        for code in CODE.findall(text):
            for words in COMMAND.findall(code):
                listed = words.split()
                while listed[:1] == ["driftloop"]:  # `docker compose exec driftloop driftloop status`
                    listed = listed[1:]
                if listed:
                    found.setdefault(command_words(listed), name)
    return found


def cli_commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from cli_commands(command, (*prefix, name))
        else:
            yield (*prefix, name)


class Families(Collector):
    def __init__(self, metrics: Iterable[Any]) -> None:
        self.metrics = list(metrics)

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield from metric.collect()


def exposed(collector: Collector) -> set[str]:
    """The names a scrape shows: every sample's, and every family's (a histogram's base name among them)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    names = set()
    for line in generate_latest(registry).decode().splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


@pytest.fixture(scope="module")
def collectors(tmp_path_factory: pytest.TempPathFactory) -> list[Collector]:
    """The daemon's metrics (from a fresh store's status) and the service's."""
    settings = Settings(home=tmp_path_factory.mktemp("home"))
    with open_store(settings) as store:
        status = collect_status(store.con, settings)
    metrics = service_metrics()
    return [
        StatusCollector(lambda: status),
        Families(getattr(metrics, field.name) for field in dataclasses.fields(metrics)),
    ]


@pytest.fixture(scope="module")
def served(collectors: list[Collector]) -> set[str]:
    return set().union(*(exposed(collector) for collector in collectors))


def test_settings_doc_is_rendered_from_the_settings() -> None:
    current = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert current == settings_doc.render(), "docs/settings.md is out of date: run `python -m daemon.settings_doc`"


def test_settings_doc_check_fails_with_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(settings_doc, "ROOT", tmp_path)
    assert (settings_doc.main([]), settings_doc.main(["--check"])) == (0, 0)
    (tmp_path / "docs" / "settings.md").write_text("stale\n", encoding="utf-8")
    capsys.readouterr()
    assert settings_doc.main(["--check"]) == 1
    assert capsys.readouterr().err.splitlines() == [settings_doc.STALE]


def test_every_setting_has_a_description() -> None:
    assert [key for key, description in leaf_fields(Settings) if not (description or "").strip()] == []


def test_every_documented_command_exists() -> None:
    failing = {
        " ".join(words): name
        for words, name in documented_commands().items()
        if CliRunner().invoke(cli, [*words, "--help"]).exit_code != 0
    }
    assert failing == {}


def test_every_command_is_documented() -> None:
    documented = set(documented_commands())
    assert [" ".join(words) for words in cli_commands(cli) if words not in documented] == []


def test_every_documented_metric_is_served(served: set[str]) -> None:
    documented = {(match, name) for name, text in TEXTS.items() for match in METRIC.findall(text)}
    assert sorted((metric, name) for metric, name in documented if metric not in served) == []


def test_every_served_metric_is_documented(collectors: list[Collector]) -> None:
    documented = {match for text in TEXTS.values() for match in METRIC.findall(text)}
    families = {family.name for collector in collectors for family in collector.collect()}
    assert sorted(name for name in families if not {name, f"{name}_total"} & documented) == []
