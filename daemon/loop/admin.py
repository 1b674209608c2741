"""The admin API: JSON lines over a Unix socket in the home directory that only its owner can open.

The CLI asks the running daemon here (the daemon holds the DuckDB file); with no daemon it opens the
store itself and calls the same functions. Whether a daemon runs is told by `daemon.lock`, which the daemon
holds locked for its whole life (the kernel drops the lock when the process dies, however it dies), not by
the socket file, which a killed daemon leaves behind.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daemon.errors import DaemonError

log = logging.getLogger(__name__)
Handler = Callable[[dict[str, Any]], dict[str, Any]]
SOCKET_NAME = "admin.sock"
LOCK_NAME = "daemon.lock"
STARTING_WAIT_S = 60.0


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
    except TimeoutError:
        raise DaemonError(
            f"the daemon did not answer {command!r} within {timeout_s:.0f} s; it may still be doing it: "
            "see its log and `driftloop status`"
        ) from None
    reply: dict[str, Any] = json.loads(answer)
    return reply


@contextmanager
def daemon_lock(home: Path) -> Iterator[None]:
    """Held while a daemon runs on `home`; a second daemon on the same home stops with a clear error."""
    home.mkdir(parents=True, exist_ok=True)
    with open(home / LOCK_NAME, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise DaemonError(
                f"a daemon (pid {handle.read().strip() or '?'}) already runs on {home}; stop it first"
            ) from None
        handle.truncate(0)
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def daemon_running(home: Path) -> bool:
    path = home / LOCK_NAME
    if not path.exists():
        return False
    with open(path, encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def ask_daemon(home: Path, command: str, timeout_s: float = 30.0, **arguments: Any) -> dict[str, Any] | None:
    """The running daemon's answer, or None when no daemon runs on `home`; a daemon still starting (it holds the
    lock, its socket is not up yet) is waited for."""
    deadline = time.monotonic() + STARTING_WAIT_S
    while True:
        answer = ask(home / SOCKET_NAME, command, timeout_s, **arguments)
        if answer is not None or not daemon_running(home):
            return answer
        if time.monotonic() > deadline:
            raise DaemonError(
                f"a daemon holds {home / LOCK_NAME} but does not answer on {home / SOCKET_NAME}; see its log"
            )
        time.sleep(0.2)
