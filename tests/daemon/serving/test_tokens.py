"""Where the service's tokens come from (a setting or a file), how the CLI sends them, and that they are masked
everywhere they could be printed."""

from __future__ import annotations

import json
import logging
import os
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from pydantic import SecretStr

from daemon.cli import cli, register_commands
from daemon.commands.serve import checked_tokens
from daemon.errors import DaemonError
from daemon.serving import client as service_client
from daemon.serving import config as service_config
from daemon.serving.config import CONFIG_ENV, ServiceConfig, write_config
from daemon.serving.tokens import bearer_matches, feedback_token, predict_token
from ingest.settings import KafkaSettings
from registry.settings import RegistrySettings

TOKEN = "s3cret-token-0123456789abcdef"
register_commands()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [name for name in os.environ if name.startswith("DRIFTLOOP_")]:
        monkeypatch.delenv(name)


def test_a_token_comes_from_the_setting_or_the_file(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text(f"\n {TOKEN} \n")
    assert feedback_token(RegistrySettings()) is None
    assert feedback_token(RegistrySettings(feedback_token=TOKEN)) == TOKEN
    assert feedback_token(RegistrySettings(feedback_token_file=file)) == TOKEN
    assert predict_token(RegistrySettings(predict_token_file=file, feedback_token="other-token-0123456789")) == TOKEN


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "registry.predict_token_file={file} does not exist; write the token into it, or unset the setting"),
        (" \n", "registry.predict_token_file={file} is empty; write the token into it, or unset the setting"),
        ("short", "registry.predict_token_file={file} holds fewer than 16 characters; write a longer token"),
        (b"\xff\xfe", "registry.predict_token_file={file} is not UTF-8 text; write the token into it as one line"),
    ],
)
def test_a_bad_token_file_is_one_line_naming_the_setting(tmp_path: Path, content: str | bytes | None,
                                                         message: str) -> None:  # fmt: skip
    file = tmp_path / "predict.token"
    if isinstance(content, str):
        file.write_text(content)
    elif content is not None:
        file.write_bytes(content)
    with pytest.raises(DaemonError) as raised:
        predict_token(RegistrySettings(predict_token_file=file))
    assert str(raised.value) == message.format(file=file)


def test_serve_stops_on_a_bad_token_file_before_starting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DRIFTLOOP_REGISTRY_FEEDBACK_TOKEN_FILE", "missing.token")
    monkeypatch.setattr(os, "execvpe", lambda *args: pytest.fail("the service was started"))
    result = CliRunner().invoke(cli, ["--home", "h", "serve"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "driftloop: error: registry.feedback_token_file=missing.token does not exist; write the token into it, "
        "or unset the setting"
    ]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--set", f"registry.feedback_token={TOKEN}", "--set", "registry.feedback_token_file=t"],
         "bad setting registry: Value error, feedback_token and feedback_token_file are both set; keep one"),
        (["--set", "registry.predict_token=s3cret"],
         "bad setting registry.predict_token='********': Value should have at least 16 items"),
    ],
)  # fmt: skip
def test_bad_token_settings_exit_2_without_the_token(arguments: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, [*arguments, "config", "show"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert TOKEN not in result.output
    assert "s3cret" not in result.output


@pytest.mark.parametrize("as_json", [True, False])
def test_config_show_masks_the_tokens(monkeypatch: pytest.MonkeyPatch, as_json: bool) -> None:
    monkeypatch.setenv("DRIFTLOOP_REGISTRY_FEEDBACK_TOKEN", TOKEN)
    monkeypatch.setenv("DRIFTLOOP_REGISTRY_PREDICT_TOKEN", TOKEN[::-1])
    result = CliRunner().invoke(cli, ["config", "show", *(["--json"] if as_json else [])])
    assert result.exit_code == 0, result.output
    assert TOKEN not in result.output
    assert TOKEN[::-1] not in result.output
    if as_json:
        shown = json.loads(result.stdout)
        assert (shown["registry.feedback_token"], shown["registry.predict_token"]) == ("********", "********")


def test_the_service_file_keeps_the_tokens_for_its_owner_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    registry = RegistrySettings(feedback_token=TOKEN, predict_token_file=Path("relative.token"))
    kafka = KafkaSettings(sasl_password=SecretStr("kafka-password"))
    path = write_config(ServiceConfig(registry=registry, kafka=kafka, bentoml_home=tmp_path), tmp_path / "service.json")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    monkeypatch.setenv(CONFIG_ENV, str(path))
    service_config.clear()
    config, _ = service_config.current()
    assert config.registry.feedback_token == SecretStr(TOKEN), "the service gets the token, not its mask"
    assert config.kafka is not None
    assert config.kafka.sasl_password == SecretStr("kafka-password")

    values = json.loads(path.read_text())
    values["registry"]["gate_margin"] = 7
    path.write_text(json.dumps(values))
    with pytest.raises(DaemonError) as raised:
        service_config.current()
    assert "(registry.gate_margin: Input should be less than or equal to 1)" in str(raised.value)
    assert TOKEN not in str(raised.value)


def test_serve_warns_when_feedback_is_open_beyond_loopback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="daemon")
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        checked_tokens(RegistrySettings(), host)
    assert caplog.records == []
    checked_tokens(RegistrySettings(feedback_token=TOKEN), "0.0.0.0")
    assert caplog.records == []
    checked_tokens(RegistrySettings(), "0.0.0.0")
    assert [record.getMessage().split(":")[0] for record in caplog.records] == [
        "/feedback accepts corrections from anyone who reaches 0.0.0.0"
    ]
    file = tmp_path / "token"
    file.write_text(TOKEN)
    relative = checked_tokens(RegistrySettings(predict_token_file=Path("token")), "127.0.0.1")
    assert relative.predict_token_file == file.resolve(), "the service may run in another folder"


def test_bearer_header_parsing() -> None:
    assert bearer_matches(f"Bearer {TOKEN}".encode(), TOKEN)
    assert bearer_matches(f"  BEARER   {TOKEN} ".encode(), TOKEN)
    assert not bearer_matches(None, TOKEN)
    assert not bearer_matches(TOKEN.encode(), TOKEN)
    assert not bearer_matches(f"Bearer {TOKEN}x".encode(), TOKEN)
    assert not bearer_matches("Bearer tökén".encode(), TOKEN)


class TokenCheckingHandler(BaseHTTPRequestHandler):
    """/predict answering 401 unless the request carries `Bearer TOKEN`."""

    def do_POST(self) -> None:
        texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["texts"]
        answer: dict[str, object] = {"error": "refused"}
        status = 401
        if self.headers.get("Authorization") == f"Bearer {TOKEN}":
            predictions = [{"label": "pos", "scores": {"pos": 1.0}} for _ in texts]
            status, answer = 200, {"model_version": "v1-p1", "source": "driftloop-test:v1", "predictions": predictions}
        body = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def service_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), TokenCheckingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_client_sends_the_predict_token(service_url: str) -> None:
    assert service_client.request_predictions(service_url, ["w1"], TOKEN)["model_version"] == "v1-p1"
    with pytest.raises(DaemonError, match="answered 401: the service needs a token; set registry.predict_token_file"):
        service_client.request_predictions(service_url, ["w1"])
    with pytest.raises(DaemonError, match="answered 401: the token sent is not the service's") as raised:
        service_client.request_predictions(service_url, ["w1"], "wrong-token-0123456789")
    assert "wrong-token" not in str(raised.value)


def test_feedback_annotate_sends_the_configured_token(
    service_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text('{"id": "a", "text": "w1", "label": "pos"}\n')
    annotate = ["feedback", "annotate", str(records), "--service", service_url]
    refused = CliRunner().invoke(cli, annotate)
    assert refused.exit_code == 1
    assert "answered 401" in refused.stderr
    monkeypatch.setenv("DRIFTLOOP_REGISTRY_PREDICT_TOKEN", TOKEN)
    result = CliRunner().invoke(cli, annotate)
    assert result.exit_code == 0, result.output
    assert "accuracy of driftloop-test:v1 on records.jsonl: 1.0000 (1 records)" in result.stdout
