"""Checks of /predict bodies beyond their types, with messages that name the problem (/feedback records get the
ingest check, `ingest.producer.checked_record`)."""

from __future__ import annotations

from collections.abc import Sequence


def texts_problem(texts: Sequence[str], max_texts: int, max_chars: int, max_request_chars: int) -> str | None:
    if not texts:
        return f"`texts` is empty; send a list of 1 to {max_texts} texts"
    if len(texts) > max_texts:
        return f"`texts` has {len(texts)} texts; at most {max_texts} per request (split the batch)"
    total = sum(len(text) for text in texts)
    if total > max_request_chars:
        return (
            f"the texts have {total} characters in all; at most {max_request_chars} per request "
            "(registry.max_request_chars): send fewer or shorter texts"
        )
    for i, text in enumerate(texts):
        if not text.strip():
            return f"`texts[{i}]` is empty"
        if len(text) > max_chars:
            return f"`texts[{i}]` has {len(text)} characters; at most {max_chars} are accepted (ingest.max_text_chars)"
    return None
