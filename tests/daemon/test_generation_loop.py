"""The loop for a generative model, every part real, with a tiny causal LM: bootstrap, /generate logging every
answer to Kafka, users correcting answers by prediction id, drift in the served prompts, a candidate gated on the
perplexity of held-out answers, approval, and the service's swap to it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from common.text_scores import corpus_score
from daemon.serving import client as service_client
from ingest.settings import KafkaSettings
from tests.conftest import wait_until
from tests.daemon import loop_helpers as loop
from tests.ingest.kafka_helpers import produce
from tests.trainer.causal_helpers import tiny_causal_lm

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


def pairs(period: int, start: int, count: int) -> list[tuple[str, str]]:
    """Prompts and answers: nouns of animals in period 0, verbs of motion in period 1 (new words, a new style)."""
    if period == 0:
        return [(f"Define the noun: beast{i}", f"a wild animal number {i} of the woods")
                for i in range(start, start + count)]  # fmt: skip
    return [(f"Define the verb: stride{i}", f"to move on foot at pace {i}") for i in range(start, start + count)]


def records(period: int, start: int, count: int) -> list[dict[str, Any]]:
    return [{"id": f"p{period}-{start + i}", "text": prompt, "label": answer}
            for i, (prompt, answer) in enumerate(pairs(period, start, count))]  # fmt: skip


def generation_environment(tmp_path: Path, kafka: KafkaSettings) -> dict[str, str]:
    corpus = [f"{prompt} {answer}" for period in (0, 1) for prompt, answer in pairs(period, 0, 400)]
    base = tiny_causal_lm(tmp_path / "base", corpus)
    return loop.environment(
        tmp_path / "home", base, kafka,
        TRAINER_TASK_KIND="generation", TRAINER_MAX_LENGTH="48", TRAINER_LEARNING_RATE="0.05",
        TRAINER_BATCH_SIZE="8", TRAINER_MAX_EPOCHS="4", TRAINER_REPLAY_SIZE="100", TRAINER_DEDUP_THRESHOLD="1.0",
        TRAINER_EVAL_MAX_NEW_TOKENS="12",
        DRIFT_STREAM="served", DRIFT_SERVED_LABEL_WAIT_S="1", DAEMON_MIN_NEW_ROWS="150", AUDIT_SAMPLE_RATE="0.25",
        REGISTRY_TASK="answers", REGISTRY_GENERATE_MAX_NEW_TOKENS="12",
        REGISTRY_GATE_LATENCY_P99_MS="60000",  # the budget is for real models (bench/generate.py), not this one
    )  # fmt: skip


def serve(url: str, prompts: list[str], log: bool = True) -> dict[str, Any]:
    """Answers to `prompts` from the service, 50 a request: the version that answered and every answer."""
    answers: list[dict[str, Any]] = []
    source = ""
    for start in range(0, len(prompts), 50):
        reply = service_client.request_answers(url, prompts[start : start + 50], log=log)
        answers += reply["answers"]
        source = reply["source"]
    return {"source": source, "answers": answers}


def test_a_generative_model_learns_the_new_prompts_from_corrected_answers(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    env = generation_environment(tmp_path, kafka_settings)
    bootstrapped = loop.cli(env, "bootstrap", "--data", str(loop.write_jsonl(tmp_path / "v1.jsonl",
                                                                           records(0, 0, 200))))  # fmt: skip
    assert "v1 is in production" in bootstrapped.stdout
    assert "validation perplexity" in bootstrapped.stdout

    port = loop.free_port()
    url = f"http://127.0.0.1:{port}"
    with open(tmp_path / "service.log", "wb") as output:
        service = subprocess.Popen([sys.executable, "-m", "daemon", "serve", "--port", str(port)], env=env,
                                   stdout=output, stderr=output)  # fmt: skip
    try:
        wait_until(lambda: service_client.ready(url), 120, "the BentoML service")
        new_prompts = pairs(1, 300, 60)  # held out of everything the models learn
        before = serve(url, [prompt for prompt, _ in new_prompts], log=False)
        with loop.daemon(env, tmp_path / "daemon.log") as running:
            old = serve(url, [prompt for prompt, _ in pairs(0, 200, 250)])
            assert old["source"] == "driftloop-answers:v1"
            shifted = pairs(1, 0, 250)
            served = serve(url, [prompt for prompt, _ in shifted])
            truth = {answer["prediction_id"]: reference for answer, (_, reference) in zip(served["answers"], shifted,
                                                                                          strict=True)}  # fmt: skip
            running.wait_until(lambda: loop.status(env)["ingest"]["prediction_log"]["predictions"] >= 500, 60,
                               "the daemon to store the served answers")  # fmt: skip
            audit = tmp_path / "audit.jsonl"
            loop.cli(env, "audit", "export", "--out", str(audit))
            to_review = [json.loads(line) for line in audit.read_text().splitlines()]
            reviewed = [{**item, "label": truth[item["prediction_id"]]} for item in to_review
                        if item["prediction_id"] in truth]  # fmt: skip
            assert len(reviewed) >= 30, "the audit sample of the new prompts is what the gate judges v2 on"
            produce(kafka_settings, [json.dumps(item).encode() for item in reviewed])  # fewer than a run needs
            corrections = [
                {"prediction_id": answer["prediction_id"], "label": reference, "kind": "correction"}
                for answer, (_, reference) in zip(served["answers"], shifted, strict=True)
                if answer["text"] != reference and answer["prediction_id"] not in {r["prediction_id"] for r in reviewed}
            ]
            assert len(corrections) > 150, "v1 has never seen a verb"
            running.wait_until(lambda: loop.status(env)["ingest"]["rows"] >= 200 + len(reviewed), 60,
                               "the daemon to store the audit labels")  # fmt: skip
            produce(kafka_settings, [json.dumps(item).encode() for item in corrections])

            def candidate() -> bool:
                models = loop.status(env)["models"]
                assert not models["gate_decisions"]["failed"], loop.cli(env, "models").stdout
                return bool(models["pending"] == ["v2"])

            running.wait_until(candidate, 300, "a candidate")
            shown = loop.cli(env, "show", "v2").stdout
            assert "gate PASSED" in shown
            assert "perplexity" in shown
            lineage = json.loads(loop.cli(env, "lineage", "v2", "--json").stdout)
            assert lineage["training_run"]["trigger"] == "drift"
            assert set(lineage["report"]["perplexity"]) == {"0", "1"}
            assert "single-prompt requests answered with 32 tokens" in lineage["report"]["cost_measured"]
            assert loop.status(env)["drift"]["watches"]["edit"].startswith("every served answer")
            loop.cli(env, "approve", "v2", "--reason", "end-to-end test")

            wait_until(lambda: serve(url, [new_prompts[0][0]], log=False)["source"] == "driftloop-answers:v2", 10,
                       "the service to swap")  # fmt: skip
            after = serve(url, [prompt for prompt, _ in new_prompts], log=False)
            references = [answer for _, answer in new_prompts]
            v1 = corpus_score("chrf", [a["text"] for a in before["answers"]], references)
            v2 = corpus_score("chrf", [a["text"] for a in after["answers"]], references)
            assert v2 > v1 + 20, f"chrF of v2 {v2:.1f} against v1 {v1:.1f} on prompts neither saw"
            production = tmp_path / "home" / "bentoml" / "models" / "driftloop-answers-production"
            exports = sorted(path.parent.parent.name for path in production.glob("*/int8/decoder.onnx"))
            assert exports == ["v1-p1", "v2-p2"], "generation serves the quantized export by default"
            assert running.stop() == 0
    finally:
        service.terminate()
        service.wait(timeout=30)
