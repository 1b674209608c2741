"""The service's Prometheus metrics, created once per process in BentoML's (multiprocess) registry."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServiceMetrics:
    predictions: Any
    predict_seconds: Any
    feedback: Any
    predict_unauthorized: Any
    answers: Any
    generate_seconds: Any
    generate_unauthorized: Any
    swaps: Any
    prediction_events: Any
    prediction_events_dropped: Any


@functools.cache
def service_metrics() -> ServiceMetrics:
    # Imported here: BentoML sets PROMETHEUS_MULTIPROC_DIR in a worker before it builds the service.
    from prometheus_client import Counter, Histogram

    return ServiceMetrics(
        predictions=Counter("driftloop_predictions", "Texts classified, by production version.", ["model_version"]),
        predict_seconds=Histogram(
            "driftloop_predict_seconds",
            "Time to classify one /predict request.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
        ),
        feedback=Counter("driftloop_feedback", "Corrections received at /feedback, by result.", ["result"]),
        predict_unauthorized=Counter(
            "driftloop_predict_unauthorized", "/predict requests refused for a missing or wrong bearer token."
        ),
        answers=Counter("driftloop_answers", "Answers /generate wrote, by production version.", ["model_version"]),
        generate_seconds=Histogram(
            "driftloop_generate_seconds",
            "Time to answer one /generate request.",
            buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
        ),
        generate_unauthorized=Counter(
            "driftloop_generate_unauthorized", "/generate requests refused for a missing or wrong bearer token."
        ),
        swaps=Counter("driftloop_model_swaps", "Production models swapped in by the service.", ["model_version"]),
        prediction_events=Counter(
            "driftloop_prediction_events_published", "Prediction events Kafka took from the prediction log."
        ),
        prediction_events_dropped=Counter(
            "driftloop_prediction_events_dropped",
            "Prediction events the prediction log dropped, by reason (queue_full, kafka_unavailable, error).",
            ["reason"],
        ),
    )
