"""/generate on a generative production model (a tiny causal LM): answers with ids and the version, the request
limits, the /predict token, the clear error of the route that does not fit the model's kind, a hot swap between
kinds and versions, and the answers in the prediction log."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from starlette.testclient import TestClient

from ingest.predictions import FIELDS, logged_answer
from ingest.settings import IngestSettings
from registry.registry import Registry
from tests.conftest import wait_until
from tests.daemon.serving.test_auth import PREDICT_TOKEN, bearer, counted
from tests.daemon.serving.test_prediction_log import RecordingSink
from tests.daemon.serving.test_service import promote
from tests.trainer.causal_helpers import tiny_causal_lm

CORPUS = ["Define the noun: kettle", "a pot for boiling water", "Define the noun: bank", "the land beside a river"]
PROMPTS = ["Define the noun: kettle", "Define the noun: bank"]


@pytest.fixture(scope="session")
def causal_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny-causal")
    return tiny_causal_lm(root / "causal-0", CORPUS, seed=0), tiny_causal_lm(root / "causal-1", CORPUS, seed=1)


def generated(client: TestClient, **body: Any) -> dict[str, Any]:
    answer = client.post("/generate", json={"prompts": PROMPTS, "max_new_tokens": 6, **body})
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def refusal(client: TestClient, route: str, body: dict[str, Any]) -> tuple[int, str]:
    answer = client.post(route, json=body)
    return answer.status_code, answer.json()["error"]


def test_generate_answers_every_prompt_with_an_id_and_the_version(
    registry: Registry, causal_models: tuple[Path, Path], serve: Any
) -> None:
    version = promote(registry, causal_models[0], "r1")
    client = serve()
    assert client.get("/readyz").status_code == 200
    answers = f'driftloop_answers_total{{model_version="{version}"}}'
    answered_before = counted(client, answers)

    body = generated(client)
    assert (set(body), body["model_version"], body["source"]) == (
        {"model_version", "source", "answers"}, version, "driftloop-test:v1"
    )  # fmt: skip
    assert [set(answer) for answer in body["answers"]] == [{"text", "prediction_id"}] * 2
    assert all(isinstance(answer["text"], str) for answer in body["answers"])
    again = generated(client)
    ids = [answer["prediction_id"] for answer in body["answers"] + again["answers"]]
    assert len(set(ids)) == 4, "every answer gets its own id, the same prompt's included"
    assert {uuid.UUID(prediction_id).version for prediction_id in ids} == {7}
    assert [a["text"] for a in again["answers"]] == [a["text"] for a in body["answers"]], "greedy is deterministic"
    sampled = generated(client, temperature=1.0, repetition_penalty=1.0, log=False)
    assert len(sampled["answers"]) == 2

    assert counted(client, answers) == answered_before + 6
    assert "driftloop_generate_seconds_count" in client.get("/metrics").text


def test_generate_refuses_what_it_cannot_serve_with_the_fix(serve: Any) -> None:
    client = serve(generate_max_new_tokens=8, generate_max_new_tokens_limit=16)
    assert refusal(client, "/generate", {"prompts": []}) == (400, "`prompts` is empty; send a list of 1 to 64 prompts")
    assert refusal(client, "/generate", {"prompts": ["a"] * 65}) == (
        400, "`prompts` has 65 prompts; at most 64 per request (split the batch)"
    )  # fmt: skip
    assert refusal(client, "/generate", {"prompts": ["x" * 20_000] * 11}) == (
        400,
        "the prompts have 220000 characters in all; at most 200000 per request (registry.max_request_chars): send "
        "fewer or shorter prompts",
    )
    assert refusal(client, "/generate", {"prompts": ["ok", " "]}) == (400, "`prompts[1]` is empty")
    assert refusal(client, "/generate", {"prompts": ["x" * 20_001]}) == (
        400, "`prompts[0]` has 20001 characters; at most 20000 are accepted (ingest.max_text_chars)"
    )  # fmt: skip
    limit = "ask for 1 to 16 tokens (registry.generate_max_new_tokens_limit)"
    out_of_range: list[tuple[dict[str, Any], str]] = [
        ({"max_new_tokens": 17}, f"`max_new_tokens` is 17; {limit}"),
        ({"max_new_tokens": 0}, f"`max_new_tokens` is 0; {limit}"),
        ({"temperature": -0.5}, "`temperature` is -0.5; send 0 (greedy) to 2 (sampling)"),
        ({"temperature": 2.5}, "`temperature` is 2.5; send 0 (greedy) to 2 (sampling)"),
        ({"repetition_penalty": 0}, "`repetition_penalty` is 0.0; send a positive number (1: no penalty)"),
    ]
    for options, problem in out_of_range:
        assert refusal(client, "/generate", {"prompts": ["ok"], **options}) == (400, problem)
    for malformed in ({"prompt": ["x"]}, {"prompts": "just one"}, {"prompts": ["x"], "max_new_tokens": "many"}):
        assert client.post("/generate", json=malformed).status_code == 400, malformed
    assert refusal(client, "/generate", {"prompts": ["ok"]}) == (
        503, "no production model yet: approve a candidate with `driftloop approve VERSION`"
    )  # fmt: skip


def test_generate_needs_the_predict_token_when_it_is_set(serve: Any) -> None:
    client = serve(predict_token=SecretStr(PREDICT_TOKEN))
    refused_before = counted(client, "driftloop_generate_unauthorized_total")
    missing = client.post("/generate", json={"prompts": ["ok"]})
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, "Bearer")
    assert missing.json() == {
        "error": "/generate needs an `Authorization: Bearer <token>` header (registry.predict_token)"
    }
    wrong = client.post("/generate", json={"prompts": ["ok"]}, headers=bearer(PREDICT_TOKEN + "-not"))
    assert wrong.status_code == 401
    right = client.post("/generate", json={"prompts": ["ok"]}, headers=bearer(PREDICT_TOKEN))
    assert right.status_code == 503, "let through: no model yet"
    assert counted(client, "driftloop_generate_unauthorized_total") == refused_before + 2


def test_each_route_says_which_kind_it_serves_across_hot_swaps(
    registry: Registry, tiny_models: tuple[Path, ...], causal_models: tuple[Path, Path], serve: Any
) -> None:
    classifier = promote(registry, tiny_models[0], "r1")
    client = serve()
    assert refusal(client, "/generate", {"prompts": ["ok"]}) == (
        409, f"the production model {classifier} is a classifier: send its texts to POST /predict"
    )  # fmt: skip

    generative = promote(registry, causal_models[0], "r2")
    wait_until(lambda: client.post("/generate", json={"prompts": ["ok"], "max_new_tokens": 2}).status_code == 200, 30,
               "the service to swap the classifier for the generative model")  # fmt: skip
    assert generated(client)["model_version"] == generative
    assert refusal(client, "/predict", {"texts": ["w1"]}) == (
        409, f"the production model {generative} is a generative model (a causal LM): send its prompts to POST "
        "/generate"
    )  # fmt: skip

    newer = promote(registry, causal_models[1], "r3")
    wait_until(lambda: generated(client)["model_version"] == newer, 30, "the swap to the newer generative model")
    assert f'driftloop_model_swaps_total{{model_version="{newer}"}}' in client.get("/metrics").text


def test_answers_go_to_the_prediction_log_as_the_ingest_check_takes_them(
    registry: Registry, causal_models: tuple[Path, Path], serve: Any
) -> None:
    version = promote(registry, causal_models[0], "r1")
    sink = RecordingSink()
    client = serve(predictions=sink)
    served = generated(client, temperature=1.5)["answers"]  # sampled: a random model's bytes, control characters too
    generated(client, log=False)
    wait_until(lambda: len(sink.events) == 2, 10, "the two answer events")
    serve()  # the instance shuts down: an event of the unlogged request would be published now
    assert sink.ids() == [answer["prediction_id"] for answer in served]
    events = [json.loads(value) for _, value in sink.events]
    assert [tuple(event) for event in events] == [FIELDS] * 2
    for event, answer, prompt in zip(events, served, PROMPTS, strict=True):
        assert (event["text"], event["text_chars"], event["model_version"]) == (prompt, len(prompt), version)
        assert event["prediction"] == logged_answer(answer["text"], IngestSettings().max_label_chars)
        assert (event["confidence"], event["top"]) == (None, {}), "an answer has no probability"
