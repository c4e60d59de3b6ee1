"""The one reader of the recorded-session format (``shared/data/recorded/README.md``, cryptofeed's format).

Lines: ``URL <-> T`` a connection opened; ``URL <- T: P`` a frame the client sent; ``URL -> T: P`` a REST
answer; ``T: P`` a frame received on the open connection; ``configuration: ...`` and blank lines are
skipped. ``T`` is epoch seconds as text; ``ts_ns`` converts it exactly (no float), payloads stay the
exact bytes of the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tickwire.contract.symbols import seconds_text_to_ns

Kind = Literal["open", "sent", "rest", "recv"]

_OPEN = re.compile(rb"^(\S+) <-> (\d+(?:\.\d+)?)\s*$")
_ARROW = re.compile(rb"^(\S+) (<-|->) (\d+(?:\.\d+)?): ")
_RECV = re.compile(rb"^(\d+(?:\.\d+)?): ")
_KINDS: dict[bytes, Kind] = {b"<-": "sent", b"->": "rest"}


@dataclass(frozen=True, slots=True)
class Event:
    line: int  # 1-based line number in its file
    kind: Kind
    url: str  # the connection's URL (recv: the last opened one), or the REST URL
    ts_text: str
    payload: bytes

    @property
    def ts_ns(self) -> int:
        return seconds_text_to_ns(self.ts_text)


def is_recorded(first_line: bytes) -> bool:
    """Does a file starting with this line look like a recorded session?"""
    return bool(_OPEN.match(first_line) or _ARROW.match(first_line))


def events(lines: Iterable[bytes]) -> Iterator[Event]:
    url = ""
    for n, raw in enumerate(lines, 1):
        line = raw.rstrip(b"\r\n")
        if m := _OPEN.match(line):
            url = m.group(1).decode()
            yield Event(n, "open", url, m.group(2).decode(), b"")
        elif m := _ARROW.match(line):
            yield Event(n, _KINDS[m.group(2)], m.group(1).decode(), m.group(3).decode(), line[m.end() :])
        elif m := _RECV.match(line):
            yield Event(n, "recv", url, m.group(1).decode(), line[m.end() :])


def read(*paths: str | Path) -> Iterator[Event]:
    for path in paths:
        yield from events(Path(path).read_bytes().split(b"\n"))


def received(path: str | Path) -> list[tuple[int, bytes]]:
    """The frames received in a session: (ts_recv ns, exact payload)."""
    return [(e.ts_ns, e.payload) for e in read(path) if e.kind == "recv"]


@dataclass
class Recording:
    """A whole recorded session in memory, for simulators that serve it back.

    ``frames`` are received payloads with their receive time (float seconds: pacing only); ``client`` the
    frames the client sent; ``rest`` maps a REST URL to its exact answer bytes.
    """

    url: str = ""
    opened: float = 0.0
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    client: list[tuple[float, bytes]] = field(default_factory=list)
    rest: dict[str, bytes] = field(default_factory=dict)


def load_recording(*paths: str | Path) -> Recording:
    rec = Recording()
    for e in read(*paths):
        if e.kind == "open":
            rec.url, rec.opened = e.url, float(e.ts_text)
        elif e.kind == "recv":
            rec.frames.append((float(e.ts_text), e.payload))
        elif e.kind == "sent":
            rec.client.append((float(e.ts_text), e.payload))
        else:
            rec.rest[e.url] = e.payload
    return rec
