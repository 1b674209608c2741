"""The service's guard: a request to /feedback, /predict or /generate without the route's bearer token is refused
with 401 before its body is read. Health, readiness and metrics routes stay open."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from daemon.serving.tokens import bearer_matches

# The setting each guarded route's token comes from: /generate reads as /predict does, with the same token.
TOKEN_SETTINGS = {
    "/feedback": "registry.feedback_token",
    "/predict": "registry.predict_token",
    "/generate": "registry.predict_token",
}


class Guard:
    """The token each guarded route requires (None: open), set by the service instance when it starts."""

    def __init__(self) -> None:
        self.tokens: Mapping[str, str | None] | None = None


class BearerAuth:
    """ASGI middleware in front of the BentoML app; `on_refused` is told the route of each 401."""

    def __init__(self, app: ASGIApp, guard: Guard, on_refused: Callable[[str], None]) -> None:
        self.app = app
        self.guard = guard
        self.on_refused = on_refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = scope["path"].rstrip("/") if scope["type"] == "http" else None
        if route in TOKEN_SETTINGS:
            response = self.refusal(route, Headers(scope=scope))
            if response is not None:
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, route: str, headers: Headers) -> JSONResponse | None:
        if self.guard.tokens is None:  # no service instance has started: refuse rather than serve unguarded
            return JSONResponse({"error": "the service is starting; retry"}, status_code=503)
        token = self.guard.tokens.get(route)
        if token is None:
            return None
        sent = headers.get("authorization")
        if sent is not None and bearer_matches(sent.encode("latin-1"), token):
            return None
        self.on_refused(route)
        setting = TOKEN_SETTINGS[route]
        if sent is None:
            problem, challenge = f"{route} needs an `Authorization: Bearer <token>` header ({setting})", "Bearer"
        else:
            problem, challenge = f"the bearer token is not the one {route} accepts ({setting})", _INVALID
        return JSONResponse({"error": problem}, status_code=401, headers={"WWW-Authenticate": challenge})


_INVALID = 'Bearer error="invalid_token"'
