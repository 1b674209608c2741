"""The pipe between the process that owns the store and its Kafka reader process.

DuckDB's Python binding takes the GIL back between the tasks of a query, so a write beside a thread that
is busy in Python (the Kafka client decoding records) runs many times slower than alone. With the Kafka
client in a process of its own both run at full speed on their own cores. The reader ships each batch as
Arrow IPC bytes and waits for the store's answer before it commits to Kafka; on every assignment it asks
for the offsets the store holds. Answers come back in the order of the requests.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection

import pyarrow as pa

from ingest.errors import IngestError
from ingest.store import BatchResult, Position


@dataclass(frozen=True)
class WriteBatch:
    """Reader → store: raw records (records.INCOMING_SCHEMA) to check and store with the next offsets."""

    incoming: bytes  # an Arrow IPC stream
    next_offsets: Mapping[tuple[str, int], int]
    polled_at: float  # time.monotonic() when its poll returned; the clock is shared by all processes


@dataclass(frozen=True)
class AskOffsets:
    """Reader → store: the position per partition of `topic`, as stored (answered with store.Position values)."""

    topic: str


@dataclass(frozen=True)
class Lag:
    """Reader → store: per topic, the records each assigned partition holds beyond what the store confirmed."""

    partitions: dict[str, dict[int, int]]


@dataclass(frozen=True)
class Finished:
    """Reader → store: the reader stopped in order; nothing is in flight."""


@dataclass(frozen=True)
class Failed:
    """Reader → store: the reader stopped on this error, which the store's side raises."""

    error: BaseException


@dataclass(frozen=True)
class Stop:
    """Store → reader: finish the batch in flight, commit it to Kafka and exit."""


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(data).read_all()


class StoreLink:
    """The reader's end. Requests go out under a lock (the Kafka client's threads log through it too);
    a thread receives the answers and sets `stop` on Stop, or when the store's process is gone."""

    def __init__(self, connection: Connection) -> None:
        self.stop = threading.Event()
        self._connection = connection
        self._sending = threading.Lock()
        self._answers: queue.SimpleQueue[object] = queue.SimpleQueue()
        threading.Thread(target=self._receive, name="store-link", daemon=True).start()

    def send(self, message: object) -> None:
        with self._sending:
            self._connection.send(message)

    def written(self) -> BatchResult:
        """The store's answer to the oldest WriteBatch not answered yet."""
        answer = self._answer()
        assert isinstance(answer, BatchResult), answer
        return answer

    def stored_positions(self, topic: str) -> dict[int, Position]:
        self.send(AskOffsets(topic))
        answer = self._answer()
        assert isinstance(answer, dict), answer
        return answer

    def _answer(self) -> object:
        answer = self._answers.get()
        if isinstance(answer, _StoreGone):
            raise IngestError("the ingest process that owns the store went away")
        return answer

    def _receive(self) -> None:
        try:
            while True:
                message = self._connection.recv()
                if isinstance(message, Stop):
                    self.stop.set()
                else:
                    self._answers.put(message)
        except (EOFError, OSError):
            self.stop.set()
            self._answers.put(_StoreGone())


class _StoreGone:
    """Put in place of an answer when the pipe closed: a reader waiting for one must not wait forever."""


class ForwardLogs(logging.Handler):
    """Sends the reader's log records to the store's process, whose handlers write them."""

    def __init__(self, link: StoreLink) -> None:
        super().__init__()
        self.link = link

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)  # the message with its arguments and traceback: always picklable
            plain = {"msg": text, "args": None, "exc_info": None, "exc_text": None, "stack_info": None}
            self.link.send(logging.makeLogRecord({**record.__dict__, **plain}))
        except OSError:
            pass  # the store's process is gone, and with it the place these logs go to
        except Exception:
            self.handleError(record)
