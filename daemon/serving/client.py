"""The CLI's side of the service's HTTP API (`driftloop serve`): is it ready, what does it predict or answer."""

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
    return _post(service_url, "/predict", {"texts": list(texts), "log": log}, token)


def request_answers(
    service_url: str, prompts: Sequence[str], token: str | None = None, log: bool = True,
    max_new_tokens: int | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The service's answer to POST /generate: `model_version`, `source` and one answer (`text`, `prediction_id`)
    per prompt, greedy; `token` and `log` as for `request_predictions`."""
    body = {"prompts": list(prompts), "log": log, "max_new_tokens": max_new_tokens}
    return _post(service_url, "/generate", body, token)


def _post(service_url: str, route: str, body: dict[str, Any], token: str | None) -> dict[str, Any]:
    url = f"{service_url.rstrip('/')}{route}"
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json", **authorization(token)})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            body_start = exc.read()[:200]
        if exc.code == 401:
            fix = "the token sent is not the service's" if token else "the service needs a token"
            raise DaemonError(f"{url} answered 401: {fix}; set registry.predict_token_file (or "
                              f"registry.predict_token) to the service's {route} token") from None  # fmt: skip
        raise DaemonError(f"{url} answered {exc.code}: {body_start!r}") from None
    except OSError as exc:
        raise DaemonError(f"cannot reach the service at {url} ({exc}); start it with `driftloop serve`") from None
    return answer
