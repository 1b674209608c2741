"""The ingest package's error tree."""

from __future__ import annotations

from common.errors import DriftloopError


class IngestError(DriftloopError):
    """Root of the errors raised by the ingest package."""


class BrokerUnavailable(IngestError):
    """No broker answered within the retry budget."""


class OffsetOutOfRange(IngestError):
    """An offset stored in DuckDB lies beyond the end of its partition (the topic was recreated)."""


class ReaderLost(IngestError):
    """The Kafka reader process died (killed, out of memory): the store is intact and a new reader resumes."""


class BadFeedback(IngestError):
    """A feedback record given on the command line or in a file breaks the schema."""
