"""The service's /feedback sink: checked records to the feedback topic, connecting on first use."""

from __future__ import annotations

import threading

from kafka import KafkaProducer

from ingest.kafka_clients import connect_once, feedback_producer
from ingest.producer import send_value
from ingest.settings import KafkaSettings


class KafkaFeedbackSink:
    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()

    def send(self, key: str, value: bytes) -> None:
        with self._lock:
            if self._producer is None:
                self._producer = connect_once(lambda: feedback_producer(self.kafka), self.kafka)
        send_value(self._producer, self.kafka, key, value)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
