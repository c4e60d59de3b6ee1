"""The pure FIX 4.4 initiator session layer against a scripted in-process peer (no sockets)."""

from __future__ import annotations

from pathlib import Path

from tickwire.vendors.fix.codec import FixMessage, decode, encode
from tickwire.vendors.fix.events import (
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
    TestRequestSent,
)
from tickwire.vendors.fix.session import NS, FixSession
from tickwire.vendors.fix.store import SeqStore, SessionSeqs

T0 = 1_767_225_600 * NS  # 2026-01-01T00:00:00Z
CFG = SessionConfig(sender="TW", target="LP", heartbeat_s=30, md_req_prefix="TW-", depth=0)
SYMS = ("EUR/USD", "GBP/USD", "USD/JPY")


def peer(msg_type: str, seq: int, body: list[tuple[int, str]] = (), dup: bool = False) -> bytes:  # type: ignore[assignment]
    header = [(43, "Y"), (122, "20260101-00:00:00.000")] if dup else []
    return encode(msg_type, sender="LP", target="TW", seq=seq, now_ns=T0, body=body, header=header)


def sent(out: Output) -> list[FixMessage]:
    return [decode(b) for b in out.send]


def logged_on(seqs: SessionSeqs | None = None, symbols: tuple[str, ...] = SYMS) -> tuple[FixSession, Output]:
    s = FixSession(CFG, seqs or SessionSeqs(), symbols)
    s.connected(T0)
    out = s.on_bytes(peer("A", s.seqs.next_in, [(98, "0"), (108, "30")]), T0)
    assert s.phase is Phase.ACTIVE
    subs = s.subscribe(symbols, T0)
    out.send += subs.send
    return s, out


def test_logon_fields_and_resubscribe_with_every_required_group() -> None:
    s = FixSession(CFG, SessionSeqs(), SYMS)
    logon = sent(s.connected(T0))[0]
    assert logon.msg_type == "A" and logon.seq == 1
    assert (logon.get(98), logon.get(108), logon.get(141)) == ("0", "30", None)
    out = s.on_bytes(peer("A", 1, [(98, "0"), (108, "30")]), T0)
    assert isinstance(out.events[0], LoggedOn) and out.send == []
    vs = sent(s.subscribe(SYMS, T0))
    assert [v.msg_type for v in vs] == ["V", "V", "V"]
    assert [v.seq for v in vs] == [2, 3, 4]
    assert [v.get(262) for v in vs] == ["TW-1", "TW-2", "TW-3"]
    v = vs[0]
    assert (v.get(263), v.get(264), v.get(265), v.get(267), v.get_all(269), v.get(146), v.get_all(55)) == (
        "1",
        "0",
        "1",
        "2",
        ["0", "1"],
        "1",
        ["EUR/USD"],
    )
    assert s.seqs.next_out == 5 and s.seqs.next_in == 2


def test_unsubscribe_reuses_the_original_mdreqid_and_carries_264_267_146() -> None:
    # Seed 002 bugs: its unsubscribe invented "MDR_UNSUB_<sym>_<ts>" and sent only 262/263/55.
    s, out = logged_on()
    sub_id = sent(out)[0].get(262)
    unsub = sent(s.unsubscribe(["EUR/USD"], T0))[0]
    assert unsub.msg_type == "V" and unsub.get(263) == "2"
    assert unsub.get(262) == sub_id == "TW-1"
    assert unsub.get(264) == "0"
    assert unsub.get(267) == "2" and unsub.get_all(269) == ["0", "1"]
    assert unsub.get(146) == "1" and unsub.get_all(55) == ["EUR/USD"]
    assert "EUR/USD" not in s.desired and "EUR/USD" not in s.seqs.md_req_ids


def test_reconnect_resubscribes_with_original_ids_and_new_symbol_gets_new_id() -> None:
    s, out = logged_on()
    first = [m.get(262) for m in sent(out)]
    s.disconnected()
    s.connected(T0 + NS)
    s.on_bytes(peer("A", s.seqs.next_in, [(98, "0"), (108, "30")]), T0 + NS)
    again = sent(s.subscribe(SYMS, T0 + NS))
    assert [m.get(262) for m in again] == first
    added = sent(s.subscribe(["AUD/USD"], T0 + NS))[0]
    assert added.get(262) == "TW-4" and added.get_all(55) == ["AUD/USD"]


def test_heartbeat_test_request_then_disconnect_on_silence() -> None:
    s, _ = logged_on()
    hb = 30 * NS
    assert s.on_timer(T0 + hb - 1).send == []
    out = s.on_timer(T0 + hb)
    assert [m.msg_type for m in sent(out)] == ["0"]  # our own heartbeat after 30 s of sending nothing
    out = s.on_timer(T0 + hb * 12 // 10)
    assert [m.msg_type for m in sent(out)] == ["1"]
    assert isinstance(out.events[0], TestRequestSent) and sent(out)[0].get(112) == "TEST1"
    assert s.on_timer(T0 + hb * 12 // 10 + hb - 1).close is None
    out = s.on_timer(T0 + hb * 12 // 10 + hb)
    assert out.close is not None and "not answered" in out.close


def test_answered_test_request_keeps_the_session() -> None:
    s, _ = logged_on()
    hb = 30 * NS
    s.on_timer(T0 + hb * 12 // 10)
    s.on_bytes(peer("0", 2, [(112, "TEST1")]), T0 + hb * 13 // 10)
    assert s.on_timer(T0 + hb * 12 // 10 + hb).close is None
    assert s.test_req_id is None


def test_peer_test_request_answered_with_its_id() -> None:
    s, _ = logged_on()
    out = sent(s.on_bytes(peer("1", 2, [(112, "PING1")]), T0))
    assert [(m.msg_type, m.get(112)) for m in out] == [("0", "PING1")]


def test_gap_sends_one_resend_request_and_queued_messages_follow_the_fill() -> None:
    s, _ = logged_on()
    w = peer("W", 2, [(55, "EUR/USD"), (262, "TW-1"), (268, "1"), (269, "0"), (270, "1.1"), (271, "1")])
    out = s.on_bytes(w, T0)
    assert [type(e) for e in out.events] == [Inbound]
    x6 = peer("X", 6, [(262, "TW-1"), (268, "0")])
    x7 = peer("X", 7, [(262, "TW-1"), (268, "0")])
    out = s.on_bytes(x6 + x7, T0)
    assert out.events == [SeqGap(expected=3, received=6)]
    rr = sent(out)
    assert [(m.msg_type, m.get(7), m.get(16)) for m in rr] == [("2", "3", "0")]
    # The peer answers: gap fill 3 -> 5, then the PossDup resend of 5..7 (6 and 7 already queued).
    fill = peer("4", 3, [(123, "Y"), (36, "5")], dup=True)
    x5 = peer("X", 5, [(262, "TW-1"), (268, "0")], dup=True)
    out = s.on_bytes(fill + x5, T0)
    inbound = [e.msg.seq for e in out.events if isinstance(e, Inbound)]
    assert GapFilled(3, 5) in out.events
    assert inbound == [3, 5, 6, 7]
    assert s.seqs.next_in == 8 and not s.queued and not s.resend_pending
    # The resent 6 and 7 (PossDup) are duplicates now: dropped, not published again.
    out = s.on_bytes(peer("X", 6, [(262, "TW-1"), (268, "0")], dup=True), T0)
    assert out.events == [Duplicate(6)]


def test_too_low_seq_without_possdup_logs_out() -> None:
    s, _ = logged_on()
    s.on_bytes(peer("0", 2), T0)
    out = s.on_bytes(peer("X", 2, [(262, "TW-1"), (268, "0")]), T0)
    msgs = sent(out)
    assert [m.msg_type for m in msgs] == ["5"]
    assert msgs[0].get(58) == "MsgSeqNum too low, expecting 3 but received 2"
    assert out.close is None and not any(isinstance(e, Inbound) for e in out.events)
    # Until the peer confirms, nothing it sends counts (no data, no second Logout) ...
    out = s.on_bytes(peer("X", 3, [(262, "TW-1"), (268, "0")]) + peer("X", 1), T0 + 1)
    assert out.events == [] and out.send == [] and out.close is None
    # ... and its Logout (whatever its number) closes with our reason.
    out = s.on_bytes(peer("5", 2), T0 + 2)
    assert out.send == [] and out.close == "MsgSeqNum too low, expecting 3 but received 2"


def test_error_logout_not_confirmed_closes_after_the_logout_timeout() -> None:
    s, _ = logged_on()
    s.on_bytes(peer("0", 2), T0)
    s.on_bytes(peer("X", 2, [(262, "TW-1"), (268, "0")]), T0)
    assert s.on_timer(T0 + int(s.cfg.logout_timeout_s * NS) - NS // 10).close is None
    out = s.on_timer(T0 + int(s.cfg.logout_timeout_s * NS))
    assert out.close == "MsgSeqNum too low, expecting 3 but received 2"


def test_sequence_reset_mode_sets_expected_number() -> None:
    s, _ = logged_on()
    out = s.on_bytes(peer("4", 99, [(36, "50")]), T0)
    assert SeqReset(50) in out.events and s.seqs.next_in == 50


def test_peer_resend_request_gap_fills_session_messages_and_resends_this_connections_v() -> None:
    s, _ = logged_on()  # Logon 1, then V 2, 3, 4 on this connection
    s.on_timer(T0 + 30 * NS)  # our Heartbeat 5
    nxt = s.seqs.next_out
    out = sent(s.on_bytes(peer("2", 2, [(7, "1"), (16, "0")]), T0 + 30 * NS))
    got = [(m.msg_type, m.seq, m.get(43), m.get(123), m.get(36), m.get(262)) for m in out]
    assert got == [
        ("4", 1, "Y", "Y", "2", None),
        ("V", 2, "Y", None, None, "TW-1"),
        ("V", 3, "Y", None, None, "TW-2"),
        ("V", 4, "Y", None, None, "TW-3"),
        ("4", 5, "Y", "Y", "6", None),
    ]
    assert all(m.get(122) is not None for m in out) and out[1].get(146) == "1"
    assert s.seqs.next_out == nxt == 6  # resends and gap fills consume no new number


def test_resend_request_after_reconnect_gap_fills_the_old_connections_v() -> None:
    s, _ = logged_on()
    s.disconnected()
    s.connected(T0)  # Logon 5
    s.on_bytes(peer("A", s.seqs.next_in, [(98, "0"), (108, "30")]), T0)
    out = sent(s.on_bytes(peer("2", s.seqs.next_in, [(7, "1"), (16, "5")]), T0))
    assert [(m.msg_type, m.seq, m.get(36)) for m in out] == [("4", 1, "6")]


def test_logon_above_expected_is_accepted_then_resend_requested() -> None:
    seqs = SessionSeqs(next_out=10, next_in=5)
    s = FixSession(CFG, seqs, SYMS)
    assert sent(s.connected(T0))[0].seq == 10
    out = s.on_bytes(peer("A", 9, [(98, "0"), (108, "30")]), T0)
    assert s.phase is Phase.ACTIVE
    assert [(m.msg_type, m.get(7), m.get(16)) for m in sent(out)] == [("2", "5", "0")]
    assert SeqGap(5, 9) in out.events


def test_reset_on_logon_policy_sends_141_and_restarts_at_one() -> None:
    s = FixSession(SessionConfig(sender="TW", target="LP", reset_on_logon=True), SessionSeqs(40, 70), SYMS)
    logon = sent(s.connected(T0))[0]
    assert (logon.seq, logon.get(141)) == (1, "Y")
    s.on_bytes(peer("A", 1, [(98, "0"), (108, "30"), (141, "Y")]), T0)
    assert s.seqs.next_in == 2


def test_md_reject_is_an_event_and_the_session_stays_up() -> None:
    s, _ = logged_on()
    out = s.on_bytes(peer("Y", 2, [(58, "unknown symbol USD/JPY"), (262, "TW-3"), (281, "0")]), T0)
    rej = next(e for e in out.events if isinstance(e, MDRejected))
    assert rej.symbol == "USD/JPY" and rej.reject.reason == "0" and rej.reject.reason_text == "unknown symbol"
    assert out.close is None and s.phase is Phase.ACTIVE and s.stats["md_rejects"] == 1


def test_logout_on_request_waits_for_the_peer_confirm() -> None:
    s, _ = logged_on()
    out = s.logout("shutdown", T0)
    assert [m.msg_type for m in sent(out)] == ["5"] and out.close is None
    out = s.on_bytes(peer("5", 2), T0)
    assert out.send == [] and out.close is not None


def test_wrong_compid_logs_out() -> None:
    s, _ = logged_on()
    bad = encode("0", sender="OTHER", target="TW", seq=2, now_ns=T0)
    out = s.on_bytes(bad, T0)
    assert [m.get(58) for m in sent(out)] == ["CompID problem: 49=OTHER 56=TW"] and out.close is None
    out = s.on_timer(T0 + int(s.cfg.logout_timeout_s * NS))
    assert out.close is not None and "CompID" in out.close


def test_bytes_split_anywhere_and_garbage_are_survived() -> None:
    s, _ = logged_on()
    data = peer("0", 2) + b"junk" + peer("0", 3)
    corrupt = bytearray(peer("0", 4))
    corrupt[-3:-1] = b"00" if corrupt[-3:-1] != b"00" else b"11"
    data += bytes(corrupt) + peer("0", 4)
    for i in range(len(data)):
        s.on_bytes(data[i : i + 1], T0)
    assert s.seqs.next_in == 5 and s.stats.get("bad_frames") == 1


def test_store_persists_seqs_and_ids_across_restart(tmp_path: Path) -> None:
    store = SeqStore(tmp_path / "lp.json")
    s, _ = logged_on(store.load())
    s.on_bytes(peer("0", 2), T0)
    assert store.save(s.seqs) is True and store.save(s.seqs) is False
    again = FixSession(CFG, SeqStore(tmp_path / "lp.json").load(), SYMS)
    logon = sent(again.connected(T0))[0]
    assert logon.seq == 5 and again.seqs.next_in == 3 and logon.get(141) is None
    assert {k: v.md_req_id for k, v in again.desired.items()} == {
        "EUR/USD": "TW-1",
        "GBP/USD": "TW-2",
        "USD/JPY": "TW-3",
    }


def test_message_without_seq_is_a_bad_frame() -> None:
    s, _ = logged_on()
    body = b"35=0\x0149=LP\x0156=TW\x01"
    raw = b"8=FIX.4.4\x019=" + str(len(body)).encode() + b"\x01" + body
    raw += b"10=" + f"{sum(raw) % 256:03d}".encode() + b"\x01"
    out = s.on_bytes(raw, T0)
    assert len(out.events) == 1 and s.stats.get("bad_frames") == 1 and s.seqs.next_in == 2


def test_resend_request_above_a_gap_is_answered_at_once() -> None:
    # Seen against QuickFIX/J: its Logon jumps ahead, then it asks us to resend; it later gap-fills over
    # its own ResendRequest, so waiting for our gap to close would leave it unanswered forever.
    seqs = SessionSeqs(next_out=37, next_in=136)
    s = FixSession(CFG, seqs, SYMS)
    s.connected(T0)
    s.on_bytes(peer("A", 142, [(98, "0"), (108, "30")]), T0)
    out = sent(s.on_bytes(peer("2", 143, [(7, "36"), (16, "0")]), T0))
    assert [(m.msg_type, m.seq, m.get(36)) for m in out] == [("4", 36, "39")]  # Logon 37, ResendRequest 38
    fill = peer("4", 136, [(123, "Y"), (36, "144")], dup=True)
    assert sent(s.on_bytes(fill, T0)) == [] and s.seqs.next_in == 144  # not answered a second time
