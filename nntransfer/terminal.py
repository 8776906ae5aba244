"""Text for a terminal: names, comments and error texts come from recipes, work folders and tables that
someone else may have written, so what nntransfer prints or logs has their terminal escape codes removed
(a name must not clear the screen, retitle the window, hide the lines after it or fake a prompt).

:func:`printable` is the one place that does it: the CLI's output passes through :class:`PrintableStream`,
log lines through :class:`PrintableFormatter`, and tables sanitise their cells so the columns line up.
"""

from __future__ import annotations

import io
import logging
import re
from typing import TextIO

# ESC and the C1 introducers start sequences that may carry text of their own (OSC titles, DCS), so each is
# removed whole; then every other control character but newline and tab; then the Unicode controls that
# reorder or hide what follows (bidirectional overrides and isolates).
_SEQUENCES = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"  # CSI: colours, cursor moves, screen clearing
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"  # OSC, DCS, SOS, PM, APC
    r"|\x1b[ -/]*[0-~]?"  # any other escape
)
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object) -> str:
    """``str(text)`` without terminal escape sequences and control characters (newlines and tabs stay)."""
    text = str(text)
    if text.isprintable():  # the common case: nothing to do
        return text
    return _CONTROLS.sub("", _SEQUENCES.sub("", text))


class PrintableFormatter(logging.Formatter):
    """A log formatter whose lines (messages, arguments, tracebacks) pass through :func:`printable`."""

    def format(self, record: logging.LogRecord) -> str:
        return printable(super().format(record))


class PrintableStream(io.TextIOBase):
    """A text stream that writes to ``stream`` what :func:`printable` leaves of each write."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream

    def write(self, text: str) -> int:
        self.stream.write(printable(text))
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def writable(self) -> bool:
        return True
