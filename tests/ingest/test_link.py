"""The pipe between the store's process and the Kafka reader, both ends in one process."""

from __future__ import annotations

import logging
import multiprocessing
import pickle
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest

from ingest.errors import IngestError
from ingest.link import AskOffsets, ForwardLogs, Stop, StoreLink, WriteBatch, from_ipc, to_ipc
from ingest.records import incoming_table
from ingest.store import BatchResult, Position
from tests.conftest import wait_until

Ends = tuple[StoreLink, Connection]


@pytest.fixture
def ends() -> Iterator[Ends]:
    """The reader's StoreLink and the store's end of the same pipe."""
    store_end, reader_end = multiprocessing.Pipe()
    yield StoreLink(reader_end), store_end
    store_end.close()
    reader_end.close()


def test_answers_come_back_in_the_order_of_the_requests(ends: Ends) -> None:
    link, store_end = ends
    incoming = incoming_table([b'{"id": "a"}', b"junk"], "t")
    link.send(WriteBatch(to_ipc(incoming), {("t", 0): 2}, 1.0))
    sent = store_end.recv()
    assert isinstance(sent, WriteBatch)
    assert from_ipc(sent.incoming).equals(incoming)
    store_end.send(BatchResult(stored=1, rejected=1, next_offsets=sent.next_offsets))
    assert link.written() == BatchResult(stored=1, rejected=1, next_offsets={("t", 0): 2})


def test_stored_positions_are_asked_for_and_answered(ends: Ends) -> None:
    link, store_end = ends
    asked: list[object] = []
    positions = {0: Position(7, "c4ca4238a0b923820dcc509a6f75849b"), 1: Position(9, None)}

    def store_side() -> None:
        asked.append(store_end.recv())
        store_end.send(positions)

    answering = threading.Thread(target=store_side)
    answering.start()
    assert link.stored_positions("t") == positions
    answering.join()
    assert asked == [AskOffsets("t")]


def test_stop_from_the_store_sets_the_readers_stop(ends: Ends) -> None:
    link, store_end = ends
    store_end.send(Stop())
    wait_until(link.stop.is_set, 5, "the stop to arrive")


def test_a_closed_pipe_stops_the_reader_and_fails_a_wait_for_an_answer(ends: Ends) -> None:
    link, store_end = ends
    store_end.close()
    wait_until(link.stop.is_set, 5, "the reader to notice")
    with pytest.raises(IngestError, match="the ingest process that owns the store went away"):
        link.written()


def test_forwarded_log_records_carry_their_arguments_and_traceback_as_text(ends: Ends) -> None:
    link, store_end = ends
    logger = logging.getLogger("ingest.test_link")
    handler = ForwardLogs(link)
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("boom")
        except ValueError:
            logger.error("failed on %s", lambda: None, exc_info=True)  # an argument that does not pickle
    finally:
        logger.removeHandler(handler)
    record = store_end.recv()
    assert isinstance(record, logging.LogRecord)
    assert record.getMessage().startswith("failed on <function ")
    assert "ValueError: boom" in record.getMessage()
    assert (record.name, record.levelno, record.args, record.exc_info) == (
        "ingest.test_link",
        logging.ERROR,
        None,
        None,
    )
    pickle.dumps(record)
