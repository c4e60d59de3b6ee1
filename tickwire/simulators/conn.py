"""What a simulated connection is, the faults a simulator can inject, and REST answers."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection

FAULTS = ("drop", "mute", "malformed", "reject_auth", "skip_seq", "oversize")
# Faults that act once per connection on its next outgoing frame.
_FRAME_FAULTS = ("malformed", "oversize")


@dataclass
class Fault:
    kind: str
    until: float  # time.monotonic() deadline for timed faults
    count: int = 1  # remaining uses of one-shot faults (skip_seq)
    conn_id: int | None = None
    opts: dict[str, Any] = field(default_factory=dict)


@dataclass
class Conn:
    """One accepted WebSocket connection and what the simulator sent on it."""

    id: int
    path: str
    ws: ServerConnection
    binary: bool = False  # frames are binary (e.g. msgpack) rather than text
    open: bool = True
    frames: int = 0
    nbytes: int = 0
    sent: list[bytes] = field(default_factory=list)  # exact payloads, when recording
    subscriptions: set[str] = field(default_factory=set)
    pending: list[str] = field(default_factory=list)  # one-shot frame faults to apply
    state: dict[str, Any] = field(default_factory=dict)  # vendor protocol state
    muted_reading: bool = False


RestAnswer = tuple[int, bytes, str]  # status, body, content type


def json_answer(obj: Any, status: int = 200) -> RestAnswer:
    return status, json.dumps(obj, separators=(",", ":")).encode(), "application/json"
