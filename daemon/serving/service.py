"""The BentoML service, composed from its parts: the registry's model slot (hot swap), the trainer's predictor or
generator (whichever kind production is), the ingest check and producer for /feedback, and the prediction log (every
prediction or answer, with its id, to Kafka).

`bentoml serve daemon.serving.service:DriftloopService` (what `driftloop serve` runs) or, in-process,
`DriftloopService.to_asgi()` after `daemon.serving.config.configure(...)`. Routes: POST /predict (a classifier),
POST /generate (a causal LM), POST /feedback, GET /healthz, /livez, /readyz and /metrics (BentoML's, plus
driftloop_* metrics). /feedback needs a bearer token when `registry.feedback_token` (or its file) is set, /predict
and /generate when `registry.predict_token` is.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any, cast

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import bentoml  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402

from daemon.serving import config as service_config  # noqa: E402
from daemon.serving.auth import BearerAuth, Guard  # noqa: E402
from daemon.serving.lifeline import exit_with_arbiter  # noqa: E402
from daemon.serving.prediction_log import PredictionLog  # noqa: E402
from daemon.serving.requests import generation_problem, texts_problem  # noqa: E402
from daemon.serving.tokens import feedback_token, predict_token  # noqa: E402
from ingest.errors import BadFeedback  # noqa: E402
from ingest.predictions import ServedPrediction, logged_answer, new_prediction_id  # noqa: E402
from ingest.producer import checked_record, feedback_record  # noqa: E402
from registry.metrics import service_metrics  # noqa: E402
from registry.reloader import Loaded, ModelSlot  # noqa: E402
from registry.served import write_served  # noqa: E402
from registry.settings import RegistrySettings  # noqa: E402
from registry.store import ModelStore, StoredModel  # noqa: E402
from trainer.causal_served import Generator, load_generator  # noqa: E402
from trainer.decoding import REPETITION_PENALTY  # noqa: E402
from trainer.model_info import is_causal_lm  # noqa: E402
from trainer.served import Served, load_served, predict  # noqa: E402

log = logging.getLogger(__name__)
NO_MODEL = "no production model yet: approve a candidate with `driftloop approve VERSION`"
GUARD = Guard()


def load_stored(stored: StoredModel, settings: RegistrySettings) -> Served | Generator:
    """A production store entry as served, from `int8/` when INT8 is on and it has one, else from `model/`: a causal
    LM as a generator, a classifier as a predictor."""
    if is_causal_lm(stored.path / "model"):
        return load_generator(stored.path / "model", stored.path / "int8", settings.int8, settings.torch_threads)
    return load_served(stored.path / "model", stored.path / "int8", settings.int8, settings.predict_batch_size,
                       settings.torch_threads)  # fmt: skip


def _error(status: int, message: str) -> dict[str, Any]:
    # BentoML sends a returned Response as it is; the cast keeps the API's declared output type.
    return cast(dict[str, Any], JSONResponse({"error": message}, status_code=status))


@bentoml.service(name="driftloop", workers=1, traffic={"timeout": 60})
class DriftloopService:
    def __init__(self) -> None:
        if not service_config.configured_in_process():
            exit_with_arbiter()  # a worker of `bentoml serve`: it must not outlive a killed arbiter
        config, self.sink = service_config.current()
        self.settings = settings = config.registry
        self.ingest = config.ingest
        token = predict_token(settings)  # /generate is read as /predict is, with its token
        GUARD.tokens = {"/feedback": feedback_token(settings), "/predict": token, "/generate": token}
        self.metrics = service_metrics()
        self.slot: ModelSlot[Served | Generator] = ModelSlot(
            ModelStore(config.bentoml_home),
            settings.production_name(),
            lambda stored: load_stored(stored, settings),
            settings.poll_interval_s,
            on_swap=self._swapped,
            on_failure=self._failed,
        )
        self.bentoml_home = config.bentoml_home
        self.prediction_log = self._prediction_log(config)
        self.slot.refresh()
        self.slot.start()

    @bentoml.api(route="/predict")  # type: ignore[untyped-decorator]  # bentoml exports it lazily (untyped)
    def predict(self, texts: list[str], log: bool = True) -> dict[str, Any]:
        """Classify a batch of texts: each gets a label, a probability per label and a prediction id, with the
        serving version; the predictions go to the prediction log without waiting for it. `log` false: an
        evaluation or a replay, not served traffic, left out of the log (drift and the audit sample watch served
        traffic only)."""
        problem = texts_problem(
            texts, self.settings.max_batch_texts, self.ingest.max_text_chars, self.settings.max_request_chars
        )
        if problem is not None:
            return _error(400, problem)
        served = self.slot.current
        if served is None:
            return _error(503, NO_MODEL)
        if isinstance(served.model, Generator):
            return _error(409, f"the production model {served.version} is a generative model (a causal LM): send "
                               "its prompts to POST /generate")  # fmt: skip
        started = time.perf_counter()
        predictions = predict(served.model, texts)
        self.metrics.predict_seconds.observe(time.perf_counter() - started)
        self.metrics.predictions.labels(model_version=served.version).inc(len(texts))
        outputs = [(p.label, p.scores) for p in predictions]
        ids = self._identified(texts, outputs, served.version, log)
        return {
            "model_version": served.version,
            "source": served.source,
            "predictions": [
                {"label": p.label, "scores": p.scores, "prediction_id": prediction_id}
                for p, prediction_id in zip(predictions, ids, strict=True)
            ],
        }

    @bentoml.api(route="/generate")  # type: ignore[untyped-decorator]
    def generate(
        self,
        prompts: list[str],
        max_new_tokens: int | None = None,
        temperature: float = 0.0,
        repetition_penalty: float = REPETITION_PENALTY,
        log: bool = True,
    ) -> dict[str, Any]:
        """Answer a batch of prompts with the generative model: each answer gets a prediction id, with the serving
        version, so a user's corrected answer can name it at /feedback; the answers go to the prediction log as
        /predict's predictions do. `max_new_tokens` defaults to `registry.generate_max_new_tokens`; `temperature` 0
        is greedy decoding, the answers the gate scored."""
        settings = self.settings
        new_tokens = settings.generate_max_new_tokens if max_new_tokens is None else max_new_tokens
        problem = texts_problem(
            prompts, settings.max_batch_texts, self.ingest.max_text_chars, settings.max_request_chars, "prompts"
        ) or generation_problem(new_tokens, settings.generate_max_new_tokens_limit, temperature, repetition_penalty)
        if problem is not None:
            return _error(400, problem)
        served = self.slot.current
        if served is None:
            return _error(503, NO_MODEL)
        if not isinstance(served.model, Generator):
            return _error(409, f"the production model {served.version} is a classifier: send its texts to POST "
                               "/predict")  # fmt: skip
        started = time.perf_counter()
        answers = served.model.generate(prompts, new_tokens, temperature, repetition_penalty)
        self.metrics.generate_seconds.observe(time.perf_counter() - started)
        self.metrics.answers.labels(model_version=served.version).inc(len(prompts))
        no_scores: dict[str, float] = {}  # an answer has no probability
        outputs = [(logged_answer(answer, self.ingest.max_label_chars), no_scores) for answer in answers]
        ids = self._identified(prompts, outputs, served.version, log)
        return {
            "model_version": served.version,
            "source": served.source,
            "answers": [
                {"text": answer, "prediction_id": prediction_id}
                for answer, prediction_id in zip(answers, ids, strict=True)
            ],
        }

    @bentoml.api(route="/feedback")  # type: ignore[untyped-decorator]
    def feedback(
        self,
        label: str,
        text: str | None = None,
        prediction_id: str | None = None,
        kind: str | None = None,
        id: str | None = None,  # the record field is called id
        prediction: str | None = None,
        model_version: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A person's label for a text, or for a prediction by the `prediction_id` /predict returned: checked as
        ingest checks every record, then sent to the feedback topic keyed by its id."""
        record = feedback_record(label, text, prediction_id, kind, id, prediction, model_version, meta)
        try:
            key, value = checked_record(record, self.ingest)
        except BadFeedback as exc:
            self.metrics.feedback.labels(result="bad").inc()
            return _error(400, str(exc))
        if self.sink is None:
            return _error(503, "/feedback is not configured: start the service with `driftloop serve` and Kafka")
        try:
            self.sink.send(key, value)
        except Exception as exc:
            log.exception("feedback %s was not sent", key)
            self.metrics.feedback.labels(result="failed").inc()
            return _error(503, f"the correction could not be sent to Kafka ({type(exc).__name__}); retry later")
        self.metrics.feedback.labels(result="sent").inc()
        return {"id": key, "status": "sent"}

    def __is_ready__(self) -> bool:
        return self.slot.current is not None

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def close(self) -> None:
        self.slot.stop()
        if self.prediction_log is not None:
            self.prediction_log.close()

    def _identified(
        self, texts: Sequence[str], outputs: Sequence[tuple[str, Mapping[str, float]]], version: str, log: bool
    ) -> list[str]:
        """A fresh prediction id for each output (label and scores, or answer and none); with `log` the outputs go
        to the prediction log, without waiting for it."""
        now_ms = time.time_ns() // 1_000_000
        ids = [new_prediction_id(now_ms) for _ in texts]
        if self.prediction_log is not None and log:
            self.prediction_log.append(
                ServedPrediction(prediction_id, text, label, scores, version, now_ms)
                for prediction_id, text, (label, scores) in zip(ids, texts, outputs, strict=True)
            )
        return ids

    def _prediction_log(self, config: service_config.ServiceConfig) -> PredictionLog | None:
        sink = service_config.prediction_sink(config)
        if sink is None:
            return None
        metrics = self.metrics
        prediction_log = PredictionLog(
            sink,
            config.registry,
            on_published=lambda count: metrics.prediction_events.inc(count),
            on_dropped=lambda reason, count: metrics.prediction_events_dropped.labels(reason=reason).inc(count),
        )
        prediction_log.start()
        return prediction_log

    def _swapped(self, loaded: Loaded[Served | Generator]) -> None:
        self.metrics.swaps.labels(model_version=loaded.version).inc()
        write_served(self.bentoml_home, self.settings.production_name(), loaded.version, loaded.source)

    def _failed(self, version: str, error: Exception) -> None:
        served = self.slot.current
        write_served(self.bentoml_home, self.settings.production_name(), served.version if served else None,
                     served.source if served else None, version, f"{type(error).__name__}: {error}"[:500])  # fmt: skip


def _refused(route: str) -> None:
    metrics = service_metrics()
    if route == "/feedback":
        metrics.feedback.labels(result="unauthorized").inc()
    elif route == "/generate":
        metrics.generate_unauthorized.inc()
    else:
        metrics.predict_unauthorized.inc()


cast(Any, DriftloopService).add_asgi_middleware(BearerAuth, guard=GUARD, on_refused=_refused)
