"""The whole loop with a tiny model and a vocabulary shift, every part real: bootstrap, the BentoML service,
the daemon on a real broker, drift, a candidate, the gate, approval through the CLI, the service's swap."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ingest.settings import KafkaSettings
from tests.conftest import wait_until
from tests.daemon import loop_helpers as loop
from tests.ingest.kafka_helpers import produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def post(port: int, path: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=30) as answer:
        parsed: dict[str, Any] = json.loads(answer.read())
    return parsed


def ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def served(port: int, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], str]:
    """The records with the service's prediction and model version, as an application would send them."""
    out, source = [], ""
    for start in range(0, len(items), 64):
        batch = items[start : start + 64]
        answer = post(port, "/predict", {"texts": [item["text"] for item in batch]})
        source = answer["source"]
        for item, prediction in zip(batch, answer["predictions"], strict=True):
            out.append({**item, "prediction": prediction["label"], "model_version": answer["model_version"]})
    return out, source


def accuracy(items: list[dict[str, Any]]) -> float:
    return sum(bool(item["prediction"] == item["label"]) for item in items) / len(items)


def test_drift_to_a_served_candidate(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = loop.environment(home, loop.tiny_base(tmp_path / "base"), kafka_settings)
    first = loop.write_jsonl(tmp_path / "v1.jsonl", loop.records(0, 600, 0))
    bootstrapped = loop.cli(env, "bootstrap", "--data", str(first))
    assert "v1 is in production" in bootstrapped.stdout

    port = loop.free_port()
    with open(tmp_path / "service.log", "wb") as output:
        service = subprocess.Popen([sys.executable, "-m", "daemon", "serve", "--port", str(port)], env=env,
                                   stdout=output, stderr=output)  # fmt: skip
    try:
        wait_until(lambda: ready(port), 120, "the BentoML service")
        with loop.daemon(env, tmp_path / "daemon.log") as running:
            same, source = served(port, loop.records(0, 300, 1))
            assert source == "driftloop-loop:v1"
            assert accuracy(same) > 0.9, "v1 knows period 0"
            produce(kafka_settings, [json.dumps(item).encode() for item in same])
            shifted, _ = served(port, loop.records(1, 700, 2))
            assert accuracy(shifted) < 0.75, "v1 has never seen period 1's words"
            produce(kafka_settings, [json.dumps(item).encode() for item in shifted])

            wait_until(lambda: loop.status(env)["models"]["pending"] == ["v2"], 300, "a candidate from the drift")
            shown = loop.cli(env, "show", "v2").stdout
            assert "gate PASSED" in shown
            approved = loop.cli(env, "approve", "v2", "--reason", "end-to-end test")
            assert "approved v2" in approved.stdout

            def serves_v2() -> bool:
                return served(port, loop.records(1, 1, 3))[1] == "driftloop-loop:v2"

            wait_until(serves_v2, 5, "the service to swap to v2")
            after_new, _ = served(port, loop.records(1, 200, 4))
            after_old, _ = served(port, loop.records(0, 200, 4))
            assert accuracy(after_new) > 0.9, "v2 learned period 1"
            assert accuracy(after_old) > 0.9, "v2 kept period 0"

            lineage = json.loads(loop.cli(env, "lineage", "v2", "--json").stdout)
            assert {item["topic"] for item in lineage["kafka_ranges"]} == {kafka_settings.topic}
            assert lineage["drift_event"]["signals"]
            assert lineage["training_run"]["trigger"] == "drift"
            assert [p["action"] for p in lineage["promotions"]] == ["approve"]
            current = loop.status(env)
            assert current["models"]["production"] == "v2"
            assert current["training"]["runs_by_status"] == {"submitted": 2}
            assert running.stop() == 0
    finally:
        service.terminate()
        service.wait(timeout=30)
