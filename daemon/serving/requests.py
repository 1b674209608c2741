"""Checks of /predict and /generate bodies beyond their types, with messages that name the problem and the fix
(/feedback records get the ingest check, `ingest.producer.checked_record`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

MAX_TEMPERATURE = 2.0


def texts_problem(
    texts: Sequence[str], max_texts: int, max_chars: int, max_request_chars: int, field: str = "texts"
) -> str | None:
    """What is wrong with a batch of texts (`field`: what the route calls them, texts or prompts), None if nothing."""
    if not texts:
        return f"`{field}` is empty; send a list of 1 to {max_texts} {field}"
    if len(texts) > max_texts:
        return f"`{field}` has {len(texts)} {field}; at most {max_texts} per request (split the batch)"
    total = sum(len(text) for text in texts)
    if total > max_request_chars:
        return (
            f"the {field} have {total} characters in all; at most {max_request_chars} per request "
            f"(registry.max_request_chars): send fewer or shorter {field}"
        )
    for i, text in enumerate(texts):
        if not text.strip():
            return f"`{field}[{i}]` is empty"
        if len(text) > max_chars:
            return (
                f"`{field}[{i}]` has {len(text)} characters; at most {max_chars} are accepted (ingest.max_text_chars)"
            )
    return None


def generation_problem(max_new_tokens: int, limit: int, temperature: float, repetition_penalty: float) -> str | None:
    """What is wrong with /generate's decoding options, None if nothing."""
    if not 1 <= max_new_tokens <= limit:
        return (
            f"`max_new_tokens` is {max_new_tokens}; ask for 1 to {limit} tokens "
            "(registry.generate_max_new_tokens_limit)"
        )
    if not 0.0 <= temperature <= MAX_TEMPERATURE:
        return f"`temperature` is {temperature}; send 0 (greedy) to {MAX_TEMPERATURE:g} (sampling)"
    if not (repetition_penalty > 0.0 and math.isfinite(repetition_penalty)):
        return f"`repetition_penalty` is {repetition_penalty}; send a positive number (1: no penalty)"
    return None
