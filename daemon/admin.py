"""The admin API: JSON lines over a Unix socket in the home directory that only its owner can open.

The CLI asks the running daemon here (the daemon holds the DuckDB file); with no daemon it opens the
store itself and calls the same functions.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], dict[str, Any]]
SOCKET_NAME = "admin.sock"


class AdminServer:
    """Serves one request per connection: {"command": NAME, ...} → {"ok": true, "result": ...}."""

    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: socketserver.ThreadingUnixStreamServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.path.unlink(missing_ok=True)
        handlers = self.handlers

        class Request(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                self.wfile.write(json.dumps(_answer(handlers, self.rfile.readline()), default=str).encode() + b"\n")

        previous = os.umask(0o177)  # the socket is created rw------- : only the owner may talk to the daemon
        try:
            self._server = socketserver.ThreadingUnixStreamServer(str(self.path), Request)
        finally:
            os.umask(previous)
        self._thread = threading.Thread(target=self._server.serve_forever, name="admin-api", daemon=True)
        self._thread.start()
        log.info("admin API listening on %s", self.path)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.path.unlink(missing_ok=True)
        log.info("admin API closed")


def _answer(handlers: Mapping[str, Handler], line: bytes) -> dict[str, Any]:
    try:
        request = json.loads(line)
        handler = handlers[request["command"]]
    except (ValueError, KeyError, TypeError):
        return {"ok": False, "error": f"unknown request {line[:80]!r}; commands: {', '.join(sorted(handlers))}"}
    try:
        return {"ok": True, "result": handler(request)}
    except Exception as exc:  # the daemon answers with the error and goes on
        log.exception("admin command %s failed", request["command"])
        return {"ok": False, "error": str(exc)}


def ask(path: Path, command: str, timeout_s: float = 30.0, **arguments: Any) -> dict[str, Any] | None:
    """The daemon's answer, or None when no daemon listens at `path`."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout_s)
            client.connect(str(path))
            client.sendall(json.dumps({"command": command, **arguments}).encode() + b"\n")
            answer = b"".join(iter(lambda: client.recv(65536), b""))
    except (FileNotFoundError, ConnectionRefusedError):
        return None
    reply: dict[str, Any] = json.loads(answer)
    return reply
