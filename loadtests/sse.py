"""Server-sent events, read line by line as the WHATWG rules say (what LLM servers stream).

An event is the `data:` lines up to a blank line, joined with newlines; `event:` names it
(default "message"); lines starting with ":" are comments (keep-alives); `id:` and `retry:`
are read and ignored; a line without a colon is a field with an empty value. A stream that
ends without a final blank line still delivers its last event.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    event: str
    data: str


class EventParser:
    """Feed raw lines (bytes, with or without their line ending); get whole events back."""

    def __init__(self) -> None:
        self._data: list[str] = []
        self._event = ""

    def feed(self, raw: bytes) -> Event | None:
        """One line in; the event it completes (a blank line ends an event), if any."""
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        return None

    def _dispatch(self) -> Event | None:
        if not self._data:
            self._event = ""
            return None
        event = Event(self._event or "message", "\n".join(self._data))
        self._data, self._event = [], ""
        return event

    def close(self) -> Event | None:
        """The last event of a stream that ended without a blank line."""
        return self._dispatch()


def events(lines: Iterable[bytes]) -> Iterator[Event]:
    """Every event in a sequence of lines."""
    parser = EventParser()
    for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
    last = parser.close()
    if last is not None:
        yield last
