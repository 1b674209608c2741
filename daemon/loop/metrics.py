"""Prometheus metrics of the daemon, computed from its status at scrape time (so they never disagree with it)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from daemon.errors import DaemonError

log = logging.getLogger(__name__)


class StatusCollector(Collector):
    def __init__(self, status: Callable[[], dict[str, Any]]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        status = self.status()
        yield from ingest_metrics(status["ingest"], status.get("daemon") or {})
        yield from drift_metrics(status["drift"])
        yield from model_metrics(status["training"], status["models"])


def ingest_metrics(ingest: dict[str, Any], live: dict[str, Any]) -> Iterator[Metric]:
    yield GaugeMetricFamily("driftloop_feedback_rows", "Feedback rows in the store.", value=ingest["rows"])
    yield CounterMetricFamily("driftloop_rejected_records", "Records rejected with a reason.", value=ingest["rejected"])
    rate = GaugeMetricFamily(
        "driftloop_ingest_records_per_second", "Records stored or rejected per second of streaming."
    )
    rate.add_metric([], live.get("records_per_s", 0.0))
    yield rate
    halted = GaugeMetricFamily("driftloop_ingest_halted", "1 while ingest has halted on an error (see status).")
    halted.add_metric([], 1.0 if live.get("ingest_halted") else 0.0)
    yield halted
    yield CounterMetricFamily(
        "driftloop_ingest_reader_restarts",
        "Kafka reader processes replaced after dying (killed, out of memory) since the daemon started.",
        value=live.get("reader_restarts", 0),
    )
    lag = GaugeMetricFamily(
        "driftloop_ingest_lag_records", "Records in Kafka not yet stored.", labels=["topic", "partition"]
    )
    for topic, partitions in sorted((live.get("lag") or {}).items()):
        for partition, behind in sorted(partitions.items()):
            lag.add_metric([topic, str(partition)], behind)
    yield lag
    log = ingest["prediction_log"]
    yield GaugeMetricFamily(
        "driftloop_prediction_log_rows", "Served predictions in the store.", value=log["predictions"]
    )
    yield GaugeMetricFamily(
        "driftloop_feedback_waiting",
        "Feedback by prediction id waiting for its prediction.",
        value=log["waiting_feedback"],
    )
    kinds = GaugeMetricFamily("driftloop_feedback_rows_by_kind", "Feedback rows per kind.", labels=["kind"])
    for kind, count in sorted(ingest["kinds"].items()):
        kinds.add_metric([kind], count)
    yield kinds


def drift_metrics(drift: dict[str, Any]) -> Iterator[Metric]:
    value = GaugeMetricFamily("driftloop_drift_signal", "Latest value of each drift signal.", labels=["signal"])
    threshold = GaugeMetricFamily("driftloop_drift_threshold", "Threshold of each drift signal.", labels=["signal"])
    for reading in drift["readings"]:
        if reading["value"] is not None:
            value.add_metric([reading["name"]], reading["value"])
        threshold.add_metric([reading["name"]], reading["threshold"])
    yield value
    yield threshold
    yield CounterMetricFamily("driftloop_drift_events", "Drift events detected.", value=drift["events_stored"])


def model_metrics(training: dict[str, Any], models: dict[str, Any]) -> Iterator[Metric]:
    runs = GaugeMetricFamily(  # a gauge: a run moves from `running` to how it ended, so a status's count can fall
        "driftloop_training_runs", "Training runs in each status now.", labels=["status"]
    )
    for status, count in sorted(training["runs_by_status"].items()):
        runs.add_metric([status], count)
    yield runs
    gate = CounterMetricFamily("driftloop_gate_decisions", "Gate decisions on candidates.", labels=["result"])
    for result, count in sorted(models["gate_decisions"].items()):
        gate.add_metric([result], count)
    yield gate
    promotions = CounterMetricFamily("driftloop_promotions", "Registry actions by kind.", labels=["action"])
    for action, count in sorted(models["promotions"].items()):
        promotions.add_metric([action], count)
    yield promotions
    serving = models.get("serving")
    matches = GaugeMetricFamily(
        "driftloop_served_matches_registry",
        "1 when the service serves the registry's production model, 0 when not, NaN before any service reported.",
    )
    matches.add_metric([], float("nan") if serving is None else 1.0 if serving["matches"] else 0.0)
    yield matches
    pending = GaugeMetricFamily("driftloop_candidates_pending", "Candidates waiting for approval.")
    pending.add_metric([], len(models["pending"]))
    yield pending
    yield from accuracy_metrics(models["accuracy"])


def accuracy_metrics(accuracy: dict[str, Any]) -> Iterator[Metric]:
    """The served model's accuracy, estimated from its confidence and measured on audit labels (absent when
    there is nothing to average)."""
    for how, value, count in (("estimated", accuracy["estimated"], accuracy["predictions"]),
                              ("audited", accuracy["audited"], accuracy["audit_rows"])):  # fmt: skip
        family = GaugeMetricFamily(
            f"driftloop_served_accuracy_{how}",
            f"Accuracy of the served model, {how} over its newest {'predictions' if how == 'estimated' else 'audits'}.",
            labels=["model_version"],
        )
        if value is not None:
            family.add_metric([accuracy["model_version"]], value)
        yield family
        rows = GaugeMetricFamily(
            f"driftloop_served_accuracy_{how}_rows", f"Rows the {how} accuracy is over.", labels=["model_version"]
        )
        if accuracy["model_version"] is not None:
            rows.add_metric([accuracy["model_version"]], count)
        yield rows


def serve_metrics(host: str, port: int, status: Callable[[], dict[str, Any]]) -> Callable[[], None]:
    """Start the /metrics endpoint; returns the function that stops it."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(status))
    try:
        server, thread = start_http_server(port, host, registry=registry)
    except OSError as exc:
        raise DaemonError(
            f"cannot serve metrics on {host}:{port}: {exc}; set daemon.metrics_port to a free port, or 0 to turn it off"
        ) from None
    log.info("Prometheus metrics on http://%s:%d/metrics", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop
