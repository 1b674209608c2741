"""`driftloop serve` for real: a `bentoml serve` process answering HTTP, swapping in a promotion, its worker ending
with it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ingest.broker import free_port
from registry.registry import Registry
from tests.ingest.kafka_helpers import running
from tests.registry.conftest import evaluation, files, lineage_for

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "predict-token-0123456789abcdef"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}


def call(url: str, body: dict[str, Any] | None = None, headers: dict[str, str] = AUTHORIZED) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read().decode()
            return response.status, json.loads(text) if text.strip().startswith(("{", "[")) else text
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read().decode() or "null")


def children(pid: int) -> set[int]:
    return {int(child) for path in Path(f"/proc/{pid}/task").glob("*/children") for child in path.read_text().split()}


@pytest.mark.slow
def test_driftloop_serve_runs_bentoml(registry: Registry, tiny_models: tuple[Path, ...], tmp_path: Path) -> None:
    first = registry.submit(files(tiny_models[0]), evaluation({1: 0.8}), None, lineage_for("r1"))
    registry.approve(first.version, "test")
    port = free_port()
    (tmp_path / "predict.token").write_text(f"{TOKEN}\n")
    env = {**os.environ, "DRIFTLOOP_REGISTRY_TASK": "test", "DRIFTLOOP_REGISTRY_POLL_INTERVAL_S": "0.2",
           "DRIFTLOOP_REGISTRY_PREDICT_TOKEN_FILE": str(tmp_path / "predict.token"),
           "DRIFTLOOP_REGISTRY_FEEDBACK_TOKEN": "feedback-token-0123456789abcdef"}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_file = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    server = subprocess.Popen([sys.executable, "-m", "daemon", "--home", str(tmp_path / "home"), "serve", "--port",
                               str(port)], cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                              start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if call(f"{base}/readyz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(0.5)
        status, body = call(f"{base}/predict", {"texts": ["w1 w2 w3"]})
        assert (status, body["model_version"]) == (200, "v1-p1"), body
        assert call(f"{base}/predict", {"texts": ["w1"]}, {})[0] == 401
        assert call(f"{base}/feedback", {"text": "w1", "label": "pos"})[0] == 401, "the predict token is not enough"
        empty = call(f"{base}/predict", {"texts": []})
        assert empty == (400, {"error": "`texts` is empty; send a list of 1 to 64 texts"})

        second = registry.submit(files(tiny_models[1]), evaluation({1: 0.8}), None, lineage_for("r2"))
        registry.approve(second.version, "test")
        swapped = time.monotonic()
        while call(f"{base}/predict", {"texts": ["w1"]})[1]["model_version"] != "v2-p2":
            assert time.monotonic() - swapped < 5, "the served model did not change"
            time.sleep(0.1)
        status, metrics = call(f"{base}/metrics")
        assert status == 200
        assert 'driftloop_model_swaps_total{model_version="v2-p2"}' in metrics

        workers = children(server.pid)
        assert workers, "bentoml serve runs its service in worker processes"
        os.kill(server.pid, signal.SIGKILL)  # the arbiter alone, as a supervisor or the OOM killer would
        server.wait()
        deadline = time.monotonic() + 20
        while any(running(worker) for worker in workers):
            assert time.monotonic() < deadline, "a worker outlived its killed arbiter"
            time.sleep(0.2)
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        for worker in workers:  # left behind only when the test failed
            if running(worker):
                os.kill(worker, signal.SIGKILL)
        log_file.close()
