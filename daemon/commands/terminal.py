"""Text from feedback records, made safe to print: a control character (an escape sequence, a carriage return)
in a label or a rejected record's value is shown escaped, never sent to the operator's terminal."""

from __future__ import annotations


def printable(text: str) -> str:
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)
