"""Checks of /predict and /feedback bodies beyond their types: sizes, with messages that name the problem."""

from __future__ import annotations

from collections.abc import Sequence

from registry.settings import RegistrySettings


def texts_problem(texts: Sequence[str], settings: RegistrySettings) -> str | None:
    if not texts:
        return f"`texts` is empty; send a list of 1 to {settings.max_batch_texts} texts"
    if len(texts) > settings.max_batch_texts:
        return f"`texts` has {len(texts)} texts; at most {settings.max_batch_texts} per request (split the batch)"
    for i, text in enumerate(texts):
        problem = text_problem(f"texts[{i}]", text, settings)
        if problem:
            return problem
    return None


def text_problem(field: str, text: str, settings: RegistrySettings) -> str | None:
    if not text.strip():
        return f"`{field}` is empty"
    if len(text) > settings.max_text_chars:
        return f"`{field}` has {len(text)} characters; at most {settings.max_text_chars} are accepted"
    return None


def feedback_problem(record_id: str, text: str, label: str, settings: RegistrySettings) -> str | None:
    if not record_id.strip() or len(record_id) > 200:
        return f"`id` must have 1 to 200 characters, got {len(record_id)}"
    if not label.strip() or len(label) > settings.max_label_chars:
        return f"`label` must have 1 to {settings.max_label_chars} characters, got {len(label)}"
    return text_problem("text", text, settings)
