"""The FIX 4.4 initiator session layer, pure: fed bytes and the time, it returns bytes to send and events.

No sockets, clocks or threads here (the adapter owns those), so every rule is unit-testable:

- Logon (A) with 98=0, 108 HeartBtInt, 141=Y only under the reset-on-logon policy, 553/554 when set;
  the session is up when the peer's Logon arrives. ``subscribe`` after every logon resubscribes each
  desired symbol with its **original** MDReqID (LPs drop subscriptions with the connection); unsubscribe
  reuses that MDReqID.
- Heartbeat (0) after HeartBtInt of outbound silence; TestRequest (1) after 1.2 x HeartBtInt of inbound
  silence; nothing received within another HeartBtInt -> disconnect. A TestRequest is answered with its
  TestReqID.
- Inbound MsgSeqNum (34): as expected -> processed; higher -> one ResendRequest (2, 7=expected, 16=0) and a
  ``SeqGap`` event, later messages queued and processed in order once the gap is filled (by resent
  messages or a SequenceReset-GapFill); lower with PossDupFlag (43=Y) -> dropped as a duplicate; lower
  without PossDup -> Logout and disconnect (the standard's rule). SequenceReset (4) in reset mode sets the
  expected number whatever its own 34.
- A ResendRequest from the peer is answered with SequenceReset-GapFill over session messages and over
  requests of earlier connections (they are re-sent after each logon instead), and with a PossDup resend
  of the V sent on this connection (a fill over them would make the peer skip them).
- Sequence numbers live in ``SessionSeqs``; the caller persists them (before sending) after every call.
"""

from __future__ import annotations

from collections.abc import Iterable

from tickwire.vendors.fix.codec import Field, FixFrameError, FixMessage, Framer, decode, encode, sending_time
from tickwire.vendors.fix.events import (
    BadFrame,
    Duplicate,
    GapFilled,
    Inbound,
    LoggedOn,
    MDRejected,
    Output,
    Phase,
    SeqGap,
    SeqReset,
    SessionConfig,
    SessionRejected,
    TestRequestSent,
)
from tickwire.vendors.fix.messages import MDRequest, WireError, read_reject
from tickwire.vendors.fix.store import SessionSeqs

NS = 1_000_000_000
MAX_QUEUED = 100_000  # messages held above a gap; beyond that the session is broken: disconnect


class FixSession:
    def __init__(self, cfg: SessionConfig, seqs: SessionSeqs, symbols: Iterable[str] = ()) -> None:
        self.cfg = cfg
        self.seqs = seqs
        self.phase = Phase.DISCONNECTED
        self.desired: dict[str, MDRequest] = {}
        self.framer = Framer()
        self.queued: dict[int, FixMessage] = {}
        self.resend_pending = False
        self.test_req_id: str | None = None
        self.last_sent = self.last_recv = self.phase_since = 0
        self.last_heartbeat_in = 0
        self.stats: dict[str, int] = {}
        self._out = Output()
        self._test_n = 0
        self._sent_app: dict[int, tuple[str, list[Field], str]] = {}  # seq -> V sent since the logon
        self._answered: set[int] = set()  # inbound ResendRequests answered ahead of their turn
        self._logout_error: str | None = None  # our Logout's reason after a session-level error
        wanted = list(dict.fromkeys(symbols))
        for sym in [s for s in seqs.md_req_ids if s not in wanted]:
            del seqs.md_req_ids[sym]
        for sym in wanted:
            self.desired[sym] = self._request(sym)

    # ---- inputs -------------------------------------------------------------------------------------

    def connected(self, now: int) -> Output:
        """The TCP connection is up: send Logon."""
        self.framer = Framer()
        self._logout_error = None
        self._sent_app.clear()
        self._answered.clear()
        self.queued.clear()
        self.resend_pending = False
        self.test_req_id = None
        self.last_recv = now
        reset = self.cfg.reset_on_logon
        if reset:
            self.seqs.reset()
        body: list[Field] = [(98, "0"), (108, str(self.cfg.heartbeat_s))]
        if reset:
            body.append((141, "Y"))
        if self.cfg.username:
            body.append((553, self.cfg.username))
        if self.cfg.password:
            body.append((554, self.cfg.password))
        self._set_phase(Phase.LOGON_SENT, now)
        self._send("A", body, now)
        return self._flush()

    def disconnected(self) -> None:
        self.phase = Phase.DISCONNECTED
        self.queued.clear()
        self.resend_pending = False
        self.test_req_id = None

    def on_bytes(self, data: bytes, now: int) -> Output:
        frames = self.framer.feed(data)
        for err in self.framer.errors:
            self._count("bad_frames")
            self._out.events.append(BadFrame(err))
        self.framer.errors.clear()
        for frame in frames:
            if self._out.close is not None:
                break
            try:
                msg = decode(frame)
                msg.seq  # noqa: B018 - validates 34 before any state change
            except FixFrameError as exc:
                self._count("bad_frames")
                self._out.events.append(BadFrame(str(exc)))
                continue
            self._on_message(msg, now)
        return self._flush()

    def on_timer(self, now: int) -> Output:
        hb = self.cfg.heartbeat_s * NS
        if self.phase is Phase.LOGON_SENT and now - self.phase_since >= self.cfg.logon_timeout_s * NS:
            self._close("logon not answered")
        elif self.phase is Phase.LOGOUT_SENT and now - self.phase_since >= self.cfg.logout_timeout_s * NS:
            self._close(self._logout_error or "logout not confirmed")
        elif self.phase is Phase.ACTIVE:
            if self.test_req_id is not None and now - self.last_recv >= hb * 12 // 10 + hb:
                self._count("test_request_timeouts")
                self._close(f"TestRequest {self.test_req_id} not answered")
            elif self.test_req_id is None and now - self.last_recv >= hb * 12 // 10:
                self._test_n += 1
                self.test_req_id = f"TEST{self._test_n}"
                self._count("test_requests_sent")
                self._send("1", [(112, self.test_req_id)], now)
                self._out.events.append(TestRequestSent(self.test_req_id))
            if now - self.last_sent >= hb:
                self._send("0", [], now)
        return self._flush()

    def logout(self, text: str, now: int) -> Output:
        if self.phase in (Phase.ACTIVE, Phase.LOGON_SENT):
            self._send("5", [(58, text)], now)
            self._set_phase(Phase.LOGOUT_SENT, now)
        elif self.phase is not Phase.LOGOUT_SENT:
            self._close(text)
        return self._flush()

    def subscribe(self, symbols: Iterable[str], now: int) -> Output:
        """V (263=1) per symbol, each with its MDReqID: the original one for a symbol seen before. Called
        with every desired symbol after each logon (LPs drop subscriptions with the connection)."""
        for sym in symbols:
            req = self.desired.get(sym) or self._request(sym)
            self.desired[sym] = req
            if self.phase is Phase.ACTIVE:
                self._send("V", req.subscribe(), now)
        return self._flush()

    def unsubscribe(self, symbols: Iterable[str], now: int) -> Output:
        for sym in symbols:
            req = self.desired.pop(sym, None)
            if req is None:
                continue
            if self.phase is Phase.ACTIVE:
                self._send("V", req.unsubscribe(), now)  # same MDReqID, every required group
            self.seqs.md_req_ids.pop(sym, None)
        return self._flush()

    # ---- inbound processing ---------------------------------------------------------------------------

    def _on_message(self, msg: FixMessage, now: int) -> None:
        self.last_recv = now
        self.test_req_id = None  # anything from the peer proves it is alive
        self._count("in")
        t = msg.msg_type
        if self._logout_error is not None:  # logged out on an error: only the confirming Logout matters
            if t == "5":
                self._close(self._logout_error)
            return
        if msg.get(49) != self.cfg.target or msg.get(56) != self.cfg.sender:
            self._logout_close(f"CompID problem: 49={msg.get(49)} 56={msg.get(56)}", now)
            return
        if self.phase is Phase.LOGON_SENT and t not in ("A", "5"):
            self._close(f"first message from the peer is {t!r}, not Logon")
            return
        if t == "A" and self.phase is Phase.LOGON_SENT and msg.get(141) == "Y":
            self.seqs.next_in = 1
        if t == "4" and msg.get(123) != "Y":
            self._sequence_reset(msg, now)
            return
        seq, expected = msg.seq, self.seqs.next_in
        if seq < expected:
            if msg.poss_dup:
                self._count("duplicates")
                self._out.events.append(Duplicate(seq))
            elif t == "5":
                self._on_logout(msg, now)
            else:
                self._logout_close(f"MsgSeqNum too low, expecting {expected} but received {seq}", now)
            return
        if seq > expected:
            if t == "A" and self.phase is Phase.LOGON_SENT:
                self._on_logon(msg, now)  # the peer gap-fills its own Logon in the resend
            elif t == "5":
                self._on_logout(msg, now)
                return
            elif t == "2":  # answered at once: the peer may gap-fill over it while we wait for our resend
                self._answer_resend(msg, now)
                self._answered.add(seq)
            if len(self.queued) >= MAX_QUEUED:
                self._close("too many messages queued above a sequence gap")
                return
            if t != "A":
                self.queued[seq] = msg
            if not self.resend_pending:
                self.resend_pending = True
                self._count("gaps")
                self._out.events.append(SeqGap(expected, seq))
                self._send("2", [(7, str(expected)), (16, "0")], now)
            return
        self._process(msg, now)
        while self._out.close is None and self.seqs.next_in in self.queued:
            self._process(self.queued.pop(self.seqs.next_in), now)
        for stale in [s for s in self.queued if s < self.seqs.next_in]:
            del self.queued[stale]
        if not self.queued:
            self.resend_pending = False

    def _process(self, msg: FixMessage, now: int) -> None:
        """``msg`` carries exactly the expected MsgSeqNum."""
        t = msg.msg_type
        if t == "4":  # gap fill: 36 is the next number the peer will use
            new = _int(msg.get(36))
            if new is not None and new > msg.seq:
                self.seqs.next_in = new
                self._count("gap_fills")
                self._out.events.append(GapFilled(msg.seq, new))
            else:
                self.seqs.next_in = msg.seq + 1
            self._out.events.append(Inbound(msg))
            return
        self.seqs.next_in = msg.seq + 1
        if t == "A":
            if self.phase is Phase.LOGON_SENT:
                self._on_logon(msg, now)
            self._out.events.append(Inbound(msg))
        elif t == "0":
            self._count("heartbeats_in")
            self.last_heartbeat_in = now
        elif t == "1":
            self._send("0", [(112, msg.get(112) or "")], now)
        elif t == "2":
            if msg.seq not in self._answered:
                self._answer_resend(msg, now)
        elif t == "3":
            self._count("session_rejects")
            self._out.events.append(SessionRejected(msg.text()))
            self._out.events.append(Inbound(msg))
        elif t == "5":
            self._on_logout(msg, now)
        else:
            self._count("app_in")
            self._out.events.append(Inbound(msg))
            if t == "Y":
                self._on_reject(msg)

    def _on_logon(self, msg: FixMessage, now: int) -> None:
        self._set_phase(Phase.ACTIVE, now)
        self._count("logons")
        self._out.events.append(LoggedOn(msg.get(141) == "Y", self.seqs.next_in, self.seqs.next_out))

    def _on_logout(self, msg: FixMessage, now: int) -> None:
        self._out.events.append(Inbound(msg))
        if self.phase is not Phase.LOGOUT_SENT:
            self._send("5", [], now)
        self._close(f"logout: {msg.get(58) or ''}".rstrip(": "))

    def _on_reject(self, msg: FixMessage) -> None:
        self._count("md_rejects")
        try:
            rej = read_reject(msg)
        except WireError as exc:
            self._out.events.append(BadFrame(str(exc)))
            return
        symbol = next((s for s, r in self.desired.items() if r.md_req_id == rej.md_req_id), None)
        self._out.events.append(MDRejected(symbol, rej))

    def _sequence_reset(self, msg: FixMessage, now: int) -> None:
        new = _int(msg.get(36))
        if new is None or new < self.seqs.next_in:
            self._send("3", [(45, str(msg.seq)), (373, "5"), (58, f"NewSeqNo {msg.get(36)} too low")], now)
            return
        self.seqs.next_in = new
        self._count("seq_resets")
        self._out.events.append(SeqReset(new))
        self._out.events.append(Inbound(msg))
        for stale in [s for s in self.queued if s < new]:
            del self.queued[stale]

    def _answer_resend(self, msg: FixMessage, now: int) -> None:
        """Session messages and requests of earlier connections -> SequenceReset-GapFill; the requests
        of this connection (its V after the logon) are resent with PossDup, else the peer would skip them
        with the fill and the subscription would be lost."""
        begin = _int(msg.get(7)) or 1
        end = _int(msg.get(16)) or 0
        last = self.seqs.next_out - 1 if end == 0 else min(end, self.seqs.next_out - 1)
        if begin > last:
            return
        self._count("resends_answered")
        seq = begin
        while seq <= last:
            if seq in self._sent_app:
                msg_type, body, orig = self._sent_app[seq]
                self._send(msg_type, body, now, seq=seq, header=[(43, "Y"), (122, orig)])
                seq += 1
                continue
            run_end = seq
            while run_end + 1 <= last and run_end + 1 not in self._sent_app:
                run_end += 1
            header: list[Field] = [(43, "Y"), (122, sending_time(now))]
            self._send("4", [(123, "Y"), (36, str(run_end + 1))], now, seq=seq, header=header)
            seq = run_end + 1

    # ---- helpers --------------------------------------------------------------------------------------

    def _request(self, symbol: str) -> MDRequest:
        md_id = self.seqs.md_req_ids.get(symbol)
        if md_id is None:
            self.seqs.id_counter += 1
            md_id = f"{self.cfg.md_req_prefix}{self.seqs.id_counter}"
            self.seqs.md_req_ids[symbol] = md_id
        return MDRequest(
            md_req_id=md_id,
            symbols=(symbol,),
            depth=self.cfg.depth,
            update_type=self.cfg.update_type,
            entry_types=self.cfg.entry_types,
        )

    def _send(
        self,
        msg_type: str,
        body: list[Field],
        now: int,
        *,
        seq: int | None = None,
        header: list[Field] | None = None,
    ) -> None:
        if seq is None:
            seq = self.seqs.next_out
            self.seqs.next_out += 1
            if msg_type == "V":  # kept for a resend request within this connection
                self._sent_app[seq] = (msg_type, body, sending_time(now))
        raw = encode(
            msg_type,
            sender=self.cfg.sender,
            target=self.cfg.target,
            seq=seq,
            now_ns=now,
            body=body,
            header=header or (),
        )
        self.last_sent = now
        self._count("out")
        self._out.send.append(raw)

    def _logout_close(self, text: str, now: int) -> None:
        """A session-level error: Logout with the reason, then nothing from the peer counts any more but
        its confirming Logout; the connection closes on that or after ``logout_timeout_s``. Closing at
        once (as the error is found) races the peer's engine: QuickFIX/J may see the disconnect before it
        has processed the Logout, and the reason never reaches its side."""
        self._count("protocol_errors")
        self._send("5", [(58, text)], now)
        self._logout_error = text
        self._set_phase(Phase.LOGOUT_SENT, now)

    def _close(self, reason: str) -> None:
        if self._out.close is None:
            self._out.close = reason
        self.phase = Phase.DISCONNECTED

    def _set_phase(self, phase: Phase, now: int) -> None:
        self.phase = phase
        self.phase_since = now

    def _count(self, key: str) -> None:
        self.stats[key] = self.stats.get(key, 0) + 1

    def _flush(self) -> Output:
        out, self._out = self._out, Output()
        return out


def _int(v: str | None) -> int | None:
    return int(v) if v is not None and v.isdigit() else None
