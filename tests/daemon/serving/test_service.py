"""The BentoML service in-process through starlette's TestClient: predict, bad input, hot reload, feedback."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import pytest

from daemon.reports.status import serving_state
from daemon.settings import Settings
from ingest.settings import KafkaSettings
from registry.registry import Registry
from registry.served import read_served
from tests.registry.conftest import evaluation, files, lineage_for
from trainer.quantize import export_int8


def promote(registry: Registry, model: Path, run: str, int8_dir: Path | None = None) -> str:
    candidate = dataclasses.replace(files(model), int8_dir=int8_dir)
    record = registry.submit(candidate, evaluation({1: 0.8}), None, lineage_for(run))
    return str(registry.approve(record.version, "test").production_tag).split(":")[1]


def test_predict_validates_and_hot_swaps(registry: Registry, tiny_models: tuple[Path, ...], serve: Any) -> None:
    client = serve()
    assert client.get("/readyz").status_code == 503
    assert "no production model yet" in client.post("/predict", json={"texts": ["w1"]}).json()["error"]
    first = promote(registry, tiny_models[0], "r1")
    client = serve()  # starts with a production model
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200

    long_text = " ".join(f"w{i % 40}" for i in range(200))  # 200 tokens > max_length 32: sliding windows
    answer = client.post("/predict", json={"texts": ["w1 w2 w3", long_text]})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_version"] == first
    assert body["source"] == "driftloop-test:v1"
    assert [set(p["scores"]) for p in body["predictions"]] == [{"neg", "pos"}] * 2
    assert all(abs(sum(p["scores"].values()) - 1) < 1e-5 for p in body["predictions"])
    assert all(p["label"] in ("neg", "pos") for p in body["predictions"])

    empty = client.post("/predict", json={"texts": []})
    assert empty.json() == {"error": "`texts` is empty; send a list of 1 to 64 texts"}
    assert client.post("/predict", json={"texts": ["a"] * 65}).json()["error"].startswith("`texts` has 65 texts")
    too_much = client.post("/predict", json={"texts": ["x" * 20_000] * 11})
    assert (too_much.status_code, too_much.json()["error"]) == (
        400,
        "the texts have 220000 characters in all; at most 200000 per request (registry.max_request_chars): "
        "send fewer or shorter texts",
    )
    too_long = client.post("/predict", json={"texts": ["ok", "x" * 20_001]})
    assert too_long.status_code == 400
    assert too_long.json()["error"].startswith("`texts[1]` has 20001 characters")
    for body_sent in ({"text": ["x"]}, {"texts": "just one"}, {"texts": [1, 2]}):
        refused = client.post("/predict", json=body_sent)
        assert (refused.status_code, refused.json()["detail"][0]["loc"][0]) == (400, "texts"), refused.text
    broken = client.post("/predict", content=b"{not json", headers={"content-type": "application/json"})
    assert broken.status_code == 400

    second = promote(registry, tiny_models[1], "r2")
    promoted_at = time.monotonic()
    while client.post("/predict", json={"texts": ["w1"]}).json()["model_version"] != second:
        assert time.monotonic() - promoted_at < 2.0, "the service did not swap to the new production model within 2 s"
        time.sleep(0.05)
    metrics = client.get("/metrics").text
    assert f'driftloop_model_swaps_total{{model_version="{second}"}}' in metrics
    assert "driftloop_predictions_total" in metrics


def test_int8_serving_serves_the_int8_export(
    registry: Registry, tiny_models: tuple[Path, ...], serve: Any, tmp_path: Path
) -> None:
    version = promote(registry, tiny_models[0], "r1", export_int8(tiny_models[0], tmp_path / "int8"))
    texts = [" ".join(f"w{(i * 7 + j) % 40}" for j in range(12)) for i in range(8)]
    fp32 = serve().post("/predict", json={"texts": texts}).json()
    answer = serve(int8=True).post("/predict", json={"texts": texts})
    assert answer.status_code == 200
    int8 = answer.json()
    assert int8["model_version"] == fp32["model_version"] == version
    differences = [abs(a["scores"]["pos"] - b["scores"]["pos"]) for a, b in zip(int8["predictions"],
                   fp32["predictions"], strict=True)]  # fmt: skip
    assert 0 < max(differences) < 0.05, "INT8 weights give close, not identical, probabilities"


def test_feedback_is_checked_and_refused_without_a_sink(serve: Any) -> None:
    client = serve()
    assert client.post("/feedback", json={"text": "w1", "label": "pos"}).status_code == 503
    assert client.post("/feedback", json={"text": "  ", "label": "pos"}).json() == {
        "error": "text is empty after whitespace normalisation"
    }
    long_id = client.post("/feedback", json={"id": "x" * 201, "text": "w1", "label": "pos"})
    assert long_id.json() == {"error": "id is 201 characters; the limit is 200 (ingest.max_id_chars)"}
    assert client.post("/feedback", json={"text": "w1"}).status_code == 400


@pytest.mark.kafka
def test_feedback_reaches_the_broker(serve: Any, kafka_settings: KafkaSettings) -> None:
    from kafka import KafkaConsumer

    from daemon.serving.feedback import KafkaFeedbackSink
    from ingest.kafka_clients import connection_config, ensure_topics

    ensure_topics(kafka_settings, 1)
    sink = KafkaFeedbackSink(kafka_settings)
    client = serve(sink)
    sent = client.post("/feedback", json={"id": "c-1", "text": "w1 w2", "label": "pos", "prediction": "neg",
                                          "model_version": "v1-p1", "meta": {"app": "test"}})  # fmt: skip
    assert sent.status_code == 200
    assert sent.json() == {"id": "c-1", "status": "sent"}
    refused = client.post("/feedback", json={"id": "x" * 201, "text": "w1", "label": "pos"})
    assert refused.status_code == 400
    assert "ingest.max_id_chars" in refused.json()["error"]

    consumer = KafkaConsumer(kafka_settings.topic, auto_offset_reset="earliest", **connection_config(kafka_settings))
    records: list[Any] = []
    deadline = time.monotonic() + 15
    try:
        while not records and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records += [json.loads(message.value) for message in batch]
    finally:
        consumer.close()
    assert records == [{"id": "c-1", "text": "w1 w2", "label": "pos", "prediction": "neg", "model_version": "v1-p1",
                        "meta": {"app": "test"}}]  # fmt: skip


def test_a_production_model_that_fails_to_load_is_shown_beside_the_registry(
    registry: Registry, tiny_models: tuple[Path, ...], serve: Any, bentoml_home: Path, tmp_path: Path
) -> None:
    first = promote(registry, tiny_models[0], "r1")
    client = serve()
    settings = Settings(home=tmp_path, registry=registry.settings.model_copy(update={"bentoml_home": bentoml_home}))
    name = registry.settings.production_name()
    assert read_served(bentoml_home, name) == dataclasses.replace(
        read_served(bentoml_home, name) or pytest.fail("no state"), version=first, failed_version=None, error=None
    )
    assert serving_status(registry, settings)["matches"] is True

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "weights.bin").write_bytes(b"not a model")
    second = promote(registry, broken, "r2")  # approved: the registry's production is now a model that cannot load
    deadline = time.monotonic() + 5
    while (read_served(bentoml_home, name) or pytest.fail("no state")).failed_version != second:
        assert time.monotonic() < deadline, "the service did not report the failed load"
        time.sleep(0.05)

    state = serving_status(registry, settings)
    assert (state["version"], state["registry_version"], state["matches"]) == (first, second, False)
    assert "not a driftloop model directory" in state["error"]
    assert client.post("/predict", json={"texts": ["w1"]}).json()["model_version"] == first


def serving_status(registry: Registry, settings: Settings) -> dict[str, Any]:
    found = serving_state(registry.con, settings)
    assert found is not None
    return found


class RecordingSink:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def send(self, key: str, value: bytes) -> None:
        self.sent.append((key, value))


def test_a_retried_feedback_without_an_id_keeps_its_id(serve: Any) -> None:
    sink = RecordingSink()
    client = serve(sink)
    correction = {"text": "w1 w2", "label": "pos", "prediction": "neg"}
    first, retried = (client.post("/feedback", json=correction).json() for _ in range(2))
    other = client.post("/feedback", json={**correction, "label": "neg"}).json()

    assert first == retried
    assert first["id"].startswith("auto-")
    assert other["id"] != first["id"]
    assert [key for key, _ in sink.sent] == [first["id"], first["id"], other["id"]]
    assert json.loads(sink.sent[0][1]) == {"id": first["id"], **correction}
