"""The registry's fixtures (tiny models, a registry over a temp store and BentoML home) and the service started
in-process through starlette's TestClient."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from starlette.testclient import TestClient

from daemon.serving import config as service_config
from daemon.serving.config import FeedbackSink, PredictionSink, ServiceConfig
from registry.settings import RegistrySettings
from tests.registry.conftest import bentoml_home, registry, settings, tiny_models

__all__ = ["bentoml_home", "registry", "serve", "settings", "tiny_models"]


@functools.cache
def asgi_app() -> Any:
    """One app per process: BentoML registers its Prometheus metrics each time it builds one."""
    from daemon.serving.service import DriftloopService

    return cast(Any, DriftloopService).to_asgi()


@pytest.fixture
def serve(settings: RegistrySettings, bentoml_home: Path) -> Iterator[Any]:
    """Start the service (a new instance, through the app's lifespan) with the given sinks (/feedback's, the
    prediction log's) and settings changes."""
    clients: list[TestClient] = []

    def start(
        sink: FeedbackSink | None = None, predictions: PredictionSink | None = None, **changes: Any
    ) -> TestClient:
        for running in clients:
            running.__exit__(None, None, None)
        clients.clear()
        config = ServiceConfig(registry=settings.model_copy(update=changes), bentoml_home=bentoml_home)
        service_config.configure(config, sink, predictions)
        client = TestClient(asgi_app())
        clients.append(client.__enter__())
        return client

    yield start
    for client in clients:
        client.__exit__(None, None, None)
    service_config.clear()
