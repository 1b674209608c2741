"""Serving benchmark: MiniLM-L6 behind the BentoML service (a real `bentoml serve` process) vs the same model
called in-process, measured in the same run, in fp32 (torch) and INT8 (the ONNX Runtime export).

The model is a LoRA fine-tune by driftloop's own trainer on binary sentiment (150 training and 250 holdout snippets
of each of the four domains, 2 epochs, `trainer.export_int8` on), so the INT8 accuracy loss is the trainer's own
measure on the 1,000 holdout snippets. The two services run side by side and their requests alternate (as do
the two in-process models'), so a busy moment of the machine slows both alike. The last line is one JSON object;
`int8_speedup` is fp32 p99 over INT8 p99 at 128 tokens through the service (`int8_speedup_p50` the same at p50),
`int8_rss_ratio` the INT8 worker's peak RSS over the fp32 worker's.

The prediction log: two fp32 services side by side again, one publishing every prediction to a local Kafka-protocol
broker (`driftloop broker`'s), one with the log off; `log_overhead_ratio` is the p99 at 128 tokens with the log on
over off (`log_overhead_ratio_p50` the same at p50), their requests alternating.
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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(Path(__file__).resolve().parent.parent)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from kafka import KafkaConsumer  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from bench.adapt import Size, bench_settings, run, sentiment  # noqa: E402
from daemon.commands.serve import SERVICE  # noqa: E402
from daemon.serving.config import CONFIG_ENV, ServiceConfig, write_config  # noqa: E402
from ingest.broker import LocalBroker, free_port  # noqa: E402
from ingest.kafka_clients import connection_config, ensure_topics  # noqa: E402
from ingest.settings import KafkaSettings  # noqa: E402
from registry.settings import RegistrySettings  # noqa: E402
from registry.store import ModelStore  # noqa: E402
from trainer.int8 import load_int8  # noqa: E402
from trainer.predict import load_classifier  # noqa: E402
from trainer.results import Candidate  # noqa: E402
from trainer.served import predict  # noqa: E402

THREADS = 2
SINGLE = {64: 60, 128: 60, 512: 20}  # tokens: requests
BATCH, BATCH_REQUESTS = 32, 6
LOGGED = 200  # single requests to each of the services with the prediction log on and off
ROOT = Path(__file__).resolve().parent.parent


def fine_tune(out: Path) -> Candidate:
    size = Size(train=150, holdout=250, epochs=2)
    settings = bench_settings(size, seed=0, torch_threads=THREADS, export_int8=True)
    return run(settings, [row for rows in sentiment(size, seed=0) for row in rows], [], None, out)


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


def alternating(calls: Sequence[Callable[[], object]], count: int) -> list[list[float]]:
    """Milliseconds of each call over `count` rounds in which every call runs once in turn (after two warm-up
    rounds), so a busy moment of the machine slows them alike."""
    timings: list[list[float]] = [[] for _ in calls]
    for round_ in range(count + 2):
        for call, spent in zip(calls, timings, strict=True):
            started = time.perf_counter()
            call()
            if round_ >= 2:
                spent.append((time.perf_counter() - started) * 1000)
    return timings


def p(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def single_texts(send: Sequence[Callable[[list[str]], object]], texts: dict[int, str]) -> list[dict[int, list[float]]]:
    """One-text latencies at every length of each way to send a text, alternating."""
    per_length = {n: alternating([functools.partial(f, [texts[n]]) for f in send], k) for n, k in SINGLE.items()}
    return [{n: per_length[n][i] for n in SINGLE} for i in range(len(send))]


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
def service(home: Path, int8: bool, kafka: KafkaSettings | None = None) -> Iterator[tuple[int, int]]:
    """A `bentoml serve` of the production model; with `kafka`, its prediction log publishes there."""
    settings = RegistrySettings(task="bench", int8=int8, torch_threads=THREADS, max_batch_texts=BATCH,
                                predict_batch_size=BATCH)  # fmt: skip
    config = ServiceConfig(registry=settings, bentoml_home=home, kafka=kafka)
    config_file = write_config(config, home / f"service-{int8}-{kafka is not None}.json")
    port = free_port()
    env = {**os.environ, "BENTOML_HOME": str(home), CONFIG_ENV: str(config_file)}
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
    """(largest peak RSS of one process, sum of current RSS) over the server and its descendants, in MiB (BentoML
    starts each worker in a process group of its own, so the server's group holds only the arbiter)."""
    processes = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            processes[int(status.parent.name)] = dict(line.split(":", 1) for line in status.read_text().splitlines()
                                                      if ":" in line)  # fmt: skip
        except OSError:
            continue
    tree, grown = {root_pid}, True
    while grown:
        children = {pid for pid, fields in processes.items() if int(fields["PPid"]) in tree} - tree
        tree, grown = tree | children, bool(children)
    memory = [processes[pid] for pid in tree if pid in processes and "VmHWM" in processes[pid]]
    peaks = [int(fields["VmHWM"].split()[0]) / 1024 for fields in memory]
    return max(peaks, default=0.0), sum(int(fields["VmRSS"].split()[0]) / 1024 for fields in memory)


def over_http(home: Path, texts: dict[int, str]) -> list[dict[str, Any]]:
    """The fp32 and the INT8 service side by side, their requests alternating."""
    with service(home, False) as fp32, service(home, True) as int8:
        connections = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for port, _ in (fp32, int8)]
        single = single_texts([functools.partial(post, connection) for connection in connections], texts)
        batch_ms = alternating([functools.partial(post, c, [texts[64]] * BATCH) for c in connections], BATCH_REQUESTS)
        for connection in connections:
            connection.close()
        memory = [tree_peak_rss_mb(pid) for _, pid in (fp32, int8)]
    return [{"single": times, "batch_per_s": round(BATCH * 1000 / statistics.median(batch), 1),
             "rss_mb": round(peak, 1), "tree_rss_mb": round(total, 1)}
            for times, batch, (peak, total) in zip(single, batch_ms, memory, strict=True)]  # fmt: skip


def with_log_on_and_off(home: Path, text: str, log_file: Path) -> tuple[list[float], list[float], int]:
    """Milliseconds of single 128-token requests to an fp32 service logging to a local broker and to one not
    logging, alternating; and the events the broker received."""
    with LocalBroker(log_file=log_file) as broker:
        kafka = KafkaSettings(bootstrap=broker.bootstrap, topic="bench-feedback", predictions_topic="bench-predictions")
        ensure_topics(kafka, 1)
        with service(home, False, kafka) as logging_on, service(home, False) as logging_off:
            connections = [
                http.client.HTTPConnection("127.0.0.1", port, timeout=60) for port, _ in (logging_on, logging_off)
            ]
            on, off = alternating([functools.partial(post, connection, [text]) for connection in connections], LOGGED)
            for connection in connections:
                connection.close()
        consumer = KafkaConsumer(kafka.predictions_topic, auto_offset_reset="earliest", consumer_timeout_ms=5_000,
                                 **connection_config(kafka))  # fmt: skip
        published = sum(1 for _ in consumer)
        consumer.close()
    return on, off, published


def measure(work: Path) -> dict[str, Any]:
    """Every figure of this bench, printed as it goes; the JSON object `main` prints last."""
    torch.set_num_threads(THREADS)
    candidate = fine_tune(work / "candidate")
    accuracy = candidate.report.int8
    assert accuracy is not None  # the run exported INT8
    model_dir, int8_dir = candidate.model_dir, candidate.path / "int8"
    texts = texts_of(model_dir)
    home = work / "bentoml"
    ModelStore(home).publish("driftloop-bench-production", "v1-p1", {"model": model_dir, "int8": int8_dir},
                             {"stage": "production"}, {"source": "driftloop-bench:v1"})  # fmt: skip
    models = (load_classifier(model_dir, batch_size=BATCH), load_int8(int8_dir, BATCH, THREADS))
    base_fp32, base_int8 = single_texts([functools.partial(predict, model) for model in models], texts)
    fp32, int8 = over_http(home, texts)
    logged, unlogged, published = with_log_on_and_off(home, texts[128], work / "broker.log")
    for name, timings in (("in-process fp32", base_fp32), ("in-process int8", base_int8),
                          ("service fp32", fp32["single"]), ("service int8", int8["single"])):  # fmt: skip
        row = "  ".join(f"{n} tok p50 {p(t, 50):7.1f} p99 {p(t, 99):7.1f} ms" for n, t in timings.items())
        print(f"{name:>16}: {row}")
    print(f"batched ({BATCH} x 64 tokens): fp32 {fp32['batch_per_s']} texts/s, int8 {int8['batch_per_s']} texts/s")
    print(f"service RSS: fp32 worker peak {fp32['rss_mb']} MiB (all processes {fp32['tree_rss_mb']} MiB), "
          f"int8 worker peak {int8['rss_mb']} MiB")  # fmt: skip
    print(f"holdout accuracy: fp32 {accuracy.fp32_accuracy:.4f}, int8 {accuracy.int8_accuracy:.4f}")
    print(f"prediction log (fp32, 128 tokens): on p50 {p(logged, 50)} p99 {p(logged, 99)} ms, off p50 "
          f"{p(unlogged, 50)} p99 {p(unlogged, 99)} ms; {published} events reached the broker")  # fmt: skip
    return {
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
        "int8_speedup": round(p(fp32["single"][128], 99) / p(int8["single"][128], 99), 2),
        "int8_speedup_p50": round(p(fp32["single"][128], 50) / p(int8["single"][128], 50), 2),
        "int8_rss_ratio": round(int8["rss_mb"] / fp32["rss_mb"], 3),
        "int8_accuracy_loss_pts": round(accuracy.accuracy_loss_pts, 2),
        "log_overhead_ratio": round(p(logged, 99) / p(unlogged, 99), 3),
        "log_overhead_ratio_p50": round(p(logged, 50) / p(unlogged, 50), 3),
        "log_events_published": published,
        "threads": THREADS,
    }


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="driftloop-bench-serve-") as scratch:
        print(json.dumps(measure(Path(scratch)), sort_keys=True))


if __name__ == "__main__":
    main()
