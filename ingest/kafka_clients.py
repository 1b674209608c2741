"""Kafka clients built from the `kafka` settings section, with retries while the cluster is unreachable."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from ingest.errors import BrokerUnavailable
from ingest.settings import IngestSettings, KafkaSettings

log = logging.getLogger(__name__)
Client = TypeVar("Client")
LINGER_MS = 20


def connection_config(kafka: KafkaSettings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap_servers": [server.strip() for server in kafka.bootstrap.split(",") if server.strip()],
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
        "bootstrap_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.sasl_mechanism is not None:
        config["sasl_mechanism"] = kafka.sasl_mechanism
        config["sasl_plain_username"] = kafka.sasl_username
        config["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return config


def with_retries(connect: Callable[[], Client], what: str, ingest: IngestSettings, stop: threading.Event) -> Client:
    """Call `connect` until a broker answers, waiting longer after each failure; give up only when stopped."""
    wait = ingest.retry_initial_s
    while True:
        try:
            return connect()
        except KafkaError as exc:
            log.warning("%s: Kafka unreachable (%s); retrying in %.1f s", what, exc, wait)
        if stop.wait(wait):
            raise BrokerUnavailable(f"{what}: stopped while waiting for Kafka")
        wait = min(wait * 2, ingest.retry_max_s)


def connect_once(connect: Callable[[], Client], kafka: KafkaSettings) -> Client:
    """One attempt, for commands a person runs: an unreachable cluster is an error that says what to check."""
    try:
        return connect()
    except KafkaError as exc:
        raise BrokerUnavailable(
            f"Kafka at {kafka.bootstrap} did not answer ({exc}); check kafka.bootstrap (DRIFTLOOP_KAFKA_BOOTSTRAP)"
        ) from None


def feedback_consumer(kafka: KafkaSettings, ingest: IngestSettings) -> KafkaConsumer:
    """A group member with a static id and manual offsets; offsets out of range raise instead of resetting."""
    return KafkaConsumer(
        group_id=kafka.group_id,
        group_instance_id=kafka.group_instance_id,
        enable_auto_commit=False,
        auto_offset_reset="none",
        session_timeout_ms=kafka.session_timeout_ms,
        heartbeat_interval_ms=max(kafka.session_timeout_ms // 5, 500),
        max_poll_interval_ms=kafka.max_poll_interval_ms,
        **fetch_config(ingest),
        **connection_config(kafka),
    )


def fetch_config(ingest: IngestSettings) -> dict[str, Any]:
    """Fetch sizes that let one poll return a whole batch."""
    return {
        "max_poll_records": ingest.batch_max_records,
        "fetch_max_bytes": 64 * 1024 * 1024,
        "max_partition_fetch_bytes": 8 * 1024 * 1024,
    }


def producer_config(kafka: KafkaSettings) -> dict[str, Any]:
    return {"acks": "all", "linger_ms": LINGER_MS, "batch_size": 256 * 1024, "retries": 10, **connection_config(kafka)}


def feedback_producer(kafka: KafkaSettings) -> KafkaProducer:
    return KafkaProducer(**producer_config(kafka))


def prediction_producer(kafka: KafkaSettings, timeout_ms: int) -> KafkaProducer:
    """The feedback producer, failing fast for the service's prediction log: connecting, a send and a record's
    delivery give up on an unreachable cluster after `timeout_ms` (delivery: at least `kafka.request_timeout_ms`,
    kafka-python's floor) instead of waiting, so that the log drops events rather than piles them up."""
    return KafkaProducer(**{**producer_config(kafka), "max_block_ms": timeout_ms, "bootstrap_timeout_ms": timeout_ms,
                            "delivery_timeout_ms": max(timeout_ms, kafka.request_timeout_ms + LINGER_MS)})  # fmt: skip


def ensure_topics(kafka: KafkaSettings, partitions: int) -> dict[str, bool]:
    """Create the feedback topic and the prediction log's when missing; per topic, True when it was created."""
    admin = KafkaAdminClient(**connection_config(kafka))
    created = {}
    try:
        for topic in (kafka.topic, kafka.predictions_topic):
            try:
                admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
            except TopicAlreadyExistsError:
                created[topic] = False
            else:
                log.info("created topic %s with %d partitions", topic, partitions)
                created[topic] = True
    finally:
        admin.close()
    return created
