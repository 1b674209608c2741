from __future__ import annotations

from daemon.commands.terminal import printable


def test_control_characters_are_shown_escaped() -> None:
    assert printable("\x1b[31mred\r\nnext\x00") == "\\x1b[31mred\\r\\nnext\\x00"
    assert printable("plain text, ünïcode ok") == "plain text, ünïcode ok"
