"""The CLI's side of the service's HTTP API (`driftloop serve`): is it ready, and what does it predict."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from daemon.errors import DaemonError
from daemon.serving.tokens import authorization


def ready(service_url: str) -> bool:
    """True once the service answers /readyz with 200 (it serves a production model)."""
    try:
        with urllib.request.urlopen(f"{service_url.rstrip('/')}/readyz", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def request_predictions(
    service_url: str, texts: Sequence[str], token: str | None = None, log: bool = True
) -> dict[str, Any]:
    """The service's answer to POST /predict: `model_version`, `source` and one prediction per text; `token` is
    sent as the bearer token (`registry.predict_token`); `log` false keeps an evaluation out of the prediction log."""
    url = f"{service_url.rstrip('/')}/predict"
    request = urllib.request.Request(url, json.dumps({"texts": list(texts), "log": log}).encode(),
                                     {"Content-Type": "application/json", **authorization(token)})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            body = exc.read()[:200]
        if exc.code == 401:
            fix = "the token sent is not the service's" if token else "the service needs a token"
            raise DaemonError(f"{url} answered 401: {fix}; set registry.predict_token_file (or "
                              "registry.predict_token) to the service's /predict token") from None  # fmt: skip
        raise DaemonError(f"{url} answered {exc.code}: {body!r}") from None
    except OSError as exc:
        raise DaemonError(f"cannot reach the service at {url} ({exc}); start it with `driftloop serve`") from None
    return answer
