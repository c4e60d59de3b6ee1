"""What the FIX session layer shares with its driver: its config and phase, the events it returns, and
the ``Output`` of every session call."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from tickwire.vendors.fix.codec import FixMessage
from tickwire.vendors.fix.messages import Reject


class Phase(Enum):
    DISCONNECTED = "disconnected"
    LOGON_SENT = "logon_sent"
    ACTIVE = "logged_on"
    LOGOUT_SENT = "logout_sent"


@dataclass(frozen=True, slots=True)
class SessionConfig:
    sender: str  # our SenderCompID (49)
    target: str  # the LP's CompID (56)
    heartbeat_s: int = 30
    reset_on_logon: bool = False
    username: str | None = None
    # From a SecretStr; only ever written into the Logon, never in a repr or a log line.
    password: str | None = field(default=None, repr=False)
    depth: int = 0
    update_type: int = 1
    entry_types: tuple[str, ...] = ("0", "1")
    md_req_prefix: str = ""
    logon_timeout_s: float = 10.0
    logout_timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class Inbound:
    """An in-order inbound message for the raw topic (application messages and audited session ones)."""

    msg: FixMessage


@dataclass(frozen=True, slots=True)
class LoggedOn:
    reset: bool
    next_in: int
    next_out: int


@dataclass(frozen=True, slots=True)
class SeqGap:
    """Inbound MsgSeqNum jumped from ``expected`` to ``received``: a ResendRequest went out."""

    expected: int
    received: int


@dataclass(frozen=True, slots=True)
class GapFilled:
    begin: int
    new_seq: int


@dataclass(frozen=True, slots=True)
class SeqReset:
    new_seq: int


@dataclass(frozen=True, slots=True)
class Duplicate:
    seq: int


@dataclass(frozen=True, slots=True)
class MDRejected:
    symbol: str | None
    reject: Reject


@dataclass(frozen=True, slots=True)
class SessionRejected:
    text: str


@dataclass(frozen=True, slots=True)
class TestRequestSent:
    __test__ = False  # not a pytest class

    test_req_id: str


@dataclass(frozen=True, slots=True)
class BadFrame:
    error: str


Event = (
    Inbound
    | LoggedOn
    | SeqGap
    | GapFilled
    | SeqReset
    | Duplicate
    | MDRejected
    | SessionRejected
    | TestRequestSent
    | BadFrame
)


@dataclass(slots=True)
class Output:
    send: list[bytes] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    close: str | None = None  # set: the transport must close now (after writing ``send``)
