"""Bearer tokens in front of /feedback and /predict: refused before the body is read, counted, never logged."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from daemon.serving.auth import BearerAuth, Guard
from registry.registry import Registry
from tests.daemon.serving.test_service import RecordingSink, promote

FEEDBACK_TOKEN = "feedback-token-0123456789abcdef"
PREDICT_TOKEN = "predict-token-0123456789abcdef"
CORRECTION = {"text": "w1 w2", "label": "pos"}
OPEN = ("/healthz", "/livez", "/readyz", "/metrics")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def counted(client: TestClient, sample: str) -> float:
    """A sample's value on the service's /metrics (0 before it is first counted)."""
    found = re.search(rf"^{re.escape(sample)} (\S+)$", client.get("/metrics").text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def test_without_tokens_both_routes_stay_open(serve: Any) -> None:
    sink = RecordingSink()
    client = serve(sink)
    assert client.post("/feedback", json=CORRECTION).status_code == 200
    assert client.post("/feedback", json=CORRECTION, headers=bearer("anything-at-all-here")).status_code == 200
    assert client.post("/predict", json={"texts": ["w1"]}).status_code == 503  # no model yet, but not refused
    assert len(sink.sent) == 2


def test_feedback_needs_its_token(serve: Any) -> None:
    sink = RecordingSink()
    client = serve(sink, feedback_token=SecretStr(FEEDBACK_TOKEN))
    refused_before = counted(client, 'driftloop_feedback_total{result="unauthorized"}')

    missing = client.post("/feedback", json=CORRECTION)
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json() == {
        "error": "/feedback needs an `Authorization: Bearer <token>` header (registry.feedback_token)"
    }
    wrong = client.post("/feedback", json=CORRECTION, headers=bearer(FEEDBACK_TOKEN[:-1] + "X"))
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert FEEDBACK_TOKEN not in wrong.text
    other_scheme = client.post("/feedback", json=CORRECTION, headers={"Authorization": f"Basic {FEEDBACK_TOKEN}"})
    assert other_scheme.status_code == 401
    malformed = client.post("/feedback", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 401, "refused before the body is read"
    assert sink.sent == []

    right = client.post("/feedback", json=CORRECTION, headers={"Authorization": f"bearer {FEEDBACK_TOKEN}"})
    assert right.status_code == 200, right.text
    assert [key for key, _ in sink.sent] == [right.json()["id"]]
    assert counted(client, 'driftloop_feedback_total{result="unauthorized"}') == refused_before + 4
    assert client.post("/predict", json={"texts": ["w1"]}).status_code == 503, "/predict stays open"
    for route in OPEN:
        assert client.get(route).status_code != 401, route


def test_predict_needs_its_token_when_set(registry: Registry, tiny_models: tuple[Path, ...], serve: Any) -> None:
    version = promote(registry, tiny_models[0], "r1")
    client = serve(RecordingSink(), predict_token=SecretStr(PREDICT_TOKEN))
    refused_before = counted(client, "driftloop_predict_unauthorized_total")

    missing = client.post("/predict", json={"texts": ["w1"]})
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
    assert "registry.predict_token" in missing.json()["error"]
    assert client.post("/predict", json={"texts": ["w1"]}, headers=bearer(FEEDBACK_TOKEN)).status_code == 401
    right = client.post("/predict", json={"texts": ["w1"]}, headers=bearer(PREDICT_TOKEN))
    assert right.status_code == 200, right.text
    assert right.json()["model_version"] == version
    assert counted(client, "driftloop_predict_unauthorized_total") == refused_before + 2
    assert client.post("/feedback", json=CORRECTION).status_code == 200, "/feedback has no token here"
    for route in OPEN:
        assert client.get(route).status_code == 200, route


def test_a_token_file_is_read_at_start(serve: Any, tmp_path: Path) -> None:
    file = tmp_path / "feedback.token"
    file.write_text(f"  {FEEDBACK_TOKEN}\n")
    client = serve(RecordingSink(), feedback_token_file=file)
    file.write_text("changed-after-start-0123456789")
    assert client.post("/feedback", json=CORRECTION).status_code == 401
    assert client.post("/feedback", json=CORRECTION, headers=bearer(FEEDBACK_TOKEN)).status_code == 200


class FailingSink:
    def send(self, key: str, value: bytes) -> None:
        raise ConnectionError("broker down")


def test_tokens_never_reach_the_log(serve: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    client = serve(FailingSink(), feedback_token=SecretStr(FEEDBACK_TOKEN), predict_token=SecretStr(PREDICT_TOKEN))
    client.post("/feedback", json=CORRECTION, headers=bearer(FEEDBACK_TOKEN + "-wrong"))
    failed = client.post("/feedback", json=CORRECTION, headers=bearer(FEEDBACK_TOKEN))
    assert failed.status_code == 503  # the sink failed: logged with its traceback
    client.post("/predict", json={"texts": ["w1"]}, headers=bearer(PREDICT_TOKEN))
    assert "was not sent" in caplog.text
    assert FEEDBACK_TOKEN not in caplog.text
    assert PREDICT_TOKEN not in caplog.text


def test_before_a_service_instance_starts_guarded_routes_are_refused() -> None:
    async def ok(request: Any) -> PlainTextResponse:
        return PlainTextResponse("ok")

    refused: list[str] = []
    app = Starlette(routes=[Route(path, ok, methods=["GET", "POST"]) for path in ("/feedback", "/healthz")])
    guard = Guard()
    client = TestClient(BearerAuth(app, guard, refused.append))
    assert client.post("/feedback").status_code == 503
    assert client.get("/healthz").text == "ok"
    guard.tokens = {"/feedback": FEEDBACK_TOKEN}
    assert client.post("/feedback/").status_code == 401, "a trailing slash is the same route"
    assert client.post("/feedback", headers=bearer(FEEDBACK_TOKEN)).text == "ok"
    assert refused == ["/feedback"]
