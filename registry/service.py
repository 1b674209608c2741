"""The BentoML service: serves `driftloop-<task>-production:latest` and swaps in each new version it finds.

`bentoml serve registry.service:DriftloopService` (what `driftloop serve` runs) or, in-process,
`DriftloopService.to_asgi()` after `registry.service_config.configure(...)`. Routes: POST /predict,
POST /feedback, GET /healthz, /livez, /readyz and /metrics (BentoML's, plus driftloop_* metrics).
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from typing import Any, cast

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")

import bentoml  # noqa: E402
import torch  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402

from registry import service_config  # noqa: E402
from registry.metrics import service_metrics  # noqa: E402
from registry.reloader import Loaded, ModelSlot  # noqa: E402
from registry.requests import feedback_problem, texts_problem  # noqa: E402
from registry.settings import RegistrySettings  # noqa: E402
from registry.store import ModelStore, StoredModel  # noqa: E402
from trainer.predict import Classifier, load_classifier, predict  # noqa: E402
from trainer.quantize import quantize  # noqa: E402

log = logging.getLogger(__name__)
NO_MODEL = "no production model yet: approve a candidate with `driftloop approve VERSION`"


def load_served_model(stored: StoredModel, settings: RegistrySettings) -> Classifier:
    """The production model of a store entry: `int8/` when INT8 is on and exported, else `model/` (quantized at
    load when INT8 is on)."""
    int8_dir = stored.path / "int8"
    if settings.int8 and int8_dir.is_dir():
        return load_classifier(int8_dir, settings.predict_batch_size)
    classifier = load_classifier(stored.path / "model", settings.predict_batch_size)
    if settings.int8:
        quantize(classifier.model)
    return classifier


def _error(status: int, message: str) -> dict[str, Any]:
    # BentoML sends a returned Response as it is; the cast keeps the API's declared output type.
    return cast(dict[str, Any], JSONResponse({"error": message}, status_code=status))


@bentoml.service(name="driftloop", workers=1, traffic={"timeout": 60})
class DriftloopService:
    def __init__(self) -> None:
        config, self.sink = service_config.current()
        self.settings = settings = config.registry
        torch.set_num_threads(settings.int8_torch_threads if settings.int8 else settings.torch_threads)
        self.metrics = service_metrics()
        self.slot: ModelSlot[Classifier] = ModelSlot(
            ModelStore(config.bentoml_home),
            self.settings.production_name(),
            lambda stored: load_served_model(stored, self.settings),
            self.settings.poll_interval_s,
            on_swap=self._swapped,
        )
        self.slot.refresh()
        self.slot.start()

    @bentoml.api(route="/predict")  # type: ignore[untyped-decorator]  # bentoml exports it lazily (untyped)
    def predict(self, texts: list[str]) -> dict[str, Any]:
        """Classify a batch of texts: each gets a label and a probability per label, with the serving version."""
        problem = texts_problem(texts, self.settings)
        if problem is not None:
            return _error(400, problem)
        served = self.slot.current
        if served is None:
            return _error(503, NO_MODEL)
        started = time.perf_counter()
        predictions = predict(served.model, texts)
        self.metrics.predict_seconds.observe(time.perf_counter() - started)
        self.metrics.predictions.labels(model_version=served.version).inc(len(texts))
        return {
            "model_version": served.version,
            "source": served.source,
            "predictions": [{"label": p.label, "scores": p.scores} for p in predictions],
        }

    @bentoml.api(route="/feedback")  # type: ignore[untyped-decorator]
    def feedback(
        self,
        text: str,
        label: str,
        id: str | None = None,  # the record field is called id
        prediction: str | None = None,
        model_version: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A correction: checked, then sent to the feedback topic keyed by its id."""
        record_id = id if id is not None else str(uuid.uuid4())
        problem = feedback_problem(record_id, text, label, self.settings)
        if problem is not None:
            self.metrics.feedback.labels(result="bad").inc()
            return _error(400, problem)
        if self.sink is None:
            return _error(503, "/feedback is not configured: start the service with `driftloop serve` and Kafka")
        record: dict[str, Any] = {"id": record_id, "text": text, "label": label}
        optional = {"prediction": prediction, "model_version": model_version, "meta": meta}
        record.update({key: value for key, value in optional.items() if value is not None})
        try:
            self.sink(record)
        except ValueError as exc:
            self.metrics.feedback.labels(result="bad").inc()
            return _error(400, str(exc))
        except Exception as exc:
            log.exception("feedback %s was not sent", record_id)
            self.metrics.feedback.labels(result="failed").inc()
            return _error(503, f"the correction could not be sent to Kafka ({type(exc).__name__}); retry later")
        self.metrics.feedback.labels(result="sent").inc()
        return {"id": record_id, "status": "sent"}

    def __is_ready__(self) -> bool:
        return self.slot.current is not None

    @bentoml.on_shutdown  # type: ignore[untyped-decorator]
    def close(self) -> None:
        self.slot.stop()

    def _swapped(self, loaded: Loaded[Classifier]) -> None:
        self.metrics.swaps.labels(model_version=loaded.version).inc()
