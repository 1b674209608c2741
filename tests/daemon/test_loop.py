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

from daemon.serving import client as service_client
from ingest.settings import KafkaSettings
from tests.conftest import wait_until
from tests.daemon import loop_helpers as loop
from tests.ingest.kafka_helpers import produce

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


class Annotator:
    """`driftloop feedback annotate` against the service: the records with its predictions, its accuracy."""

    def __init__(self, env: dict[str, str], folder: Path, port: int) -> None:
        self.env, self.folder, self.url = env, folder, f"http://127.0.0.1:{port}"
        self.files = 0

    def __call__(self, items: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], float, str]:
        self.files += 1
        plain = loop.write_jsonl(self.folder / f"plain-{self.files}.jsonl", items)
        served = self.folder / f"served-{self.files}.jsonl"
        said = loop.cli(self.env, "feedback", "annotate", str(plain), "--service", self.url, "--out", str(served))
        source, accuracy = (
            said.stdout.removeprefix("accuracy of ").split(" on ")[0],
            float(said.stdout.split(": ")[1].split()[0]),
        )
        return [json.loads(line) for line in served.read_text().splitlines()], accuracy, source


def test_drift_to_a_served_candidate(kafka_settings: KafkaSettings, tmp_path: Path) -> None:
    home = tmp_path / "home"
    metrics_port = loop.free_port()
    env = loop.environment(
        home, loop.tiny_base(tmp_path / "base"), kafka_settings, DAEMON_METRICS_PORT=str(metrics_port)
    )
    first = loop.write_jsonl(tmp_path / "v1.jsonl", loop.records(0, 600, 0))
    bootstrapped = loop.cli(env, "bootstrap", "--data", str(first))
    assert "v1 is in production" in bootstrapped.stdout

    port = loop.free_port()
    with open(tmp_path / "service.log", "wb") as output:
        service = subprocess.Popen([sys.executable, "-m", "daemon", "serve", "--port", str(port)], env=env,
                                   stdout=output, stderr=output)  # fmt: skip
    try:
        wait_until(lambda: service_client.ready(f"http://127.0.0.1:{port}"), 120, "the BentoML service")
        served = Annotator(env, tmp_path, port)
        with loop.daemon(env, tmp_path / "daemon.log") as running:
            same, right, source = served(loop.records(0, 300, 1))
            assert source == "driftloop-loop:v1"
            assert right > 0.9, "v1 knows period 0"
            assert {item["model_version"] for item in same} == {"v1-p1"}
            produce(kafka_settings, [json.dumps(item).encode() for item in same])
            shifted, right, _ = served(loop.records(1, 700, 2))
            assert right < 0.75, "v1 has never seen period 1's words"
            produce(kafka_settings, [json.dumps(item).encode() for item in shifted])

            wait_until(lambda: loop.status(env)["models"]["pending"] == ["v2"], 300, "a candidate from the drift")
            shown = loop.cli(env, "show", "v2").stdout
            assert "gate PASSED" in shown
            approved = loop.cli(env, "approve", "v2", "--reason", "end-to-end test")
            assert "approved v2" in approved.stdout

            wait_until(lambda: served(loop.records(1, 1, 3))[2] == "driftloop-loop:v2", 5, "the service to swap")
            assert served(loop.records(1, 200, 4))[1] > 0.9, "v2 learned period 1"
            assert served(loop.records(0, 200, 4))[1] > 0.9, "v2 kept period 0"

            lineage = json.loads(loop.cli(env, "lineage", "v2", "--json").stdout)
            assert {item["topic"] for item in lineage["kafka_ranges"]} == {kafka_settings.topic}
            assert lineage["drift_event"]["signals"]
            assert lineage["training_run"]["trigger"] == "drift"
            assert [p["action"] for p in lineage["promotions"]] == ["approve"]
            current = loop.status(env)
            assert current["models"]["production"] == "v2"
            assert current["training"]["runs_by_status"] == {"submitted": 2}
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as answer:
                metrics = answer.read().decode()
            assert 'driftloop_promotions_total{action="approve"} 2.0' in metrics
            assert 'driftloop_training_runs{status="submitted"} 2.0' in metrics
            assert "driftloop_feedback_rows 1600.0" in metrics
            assert 'driftloop_drift_threshold{signal="error"} 0.05' in metrics
            assert f"driftloop_drift_events_total {float(current['drift']['events_stored'])}" in metrics
            assert running.stop() == 0
        chart = tmp_path / "chart.png"
        assert loop.cli(env, "chart", "--out", str(chart), "--window", "100").stdout == f"wrote {chart}\n"
        assert chart.read_bytes().startswith(b"\x89PNG")
    finally:
        service.terminate()
        service.wait(timeout=30)
