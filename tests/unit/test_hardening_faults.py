"""Issue 16, faults side: the per-message error boundary, error classification, DLQ replay after a fix."""

from __future__ import annotations

import argparse
import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.helpers import FakeMessage
from tests.unit.test_normalize_pipeline import CODEC, GOOD, SESSION, T0, FakeParser, Feed, make
from tickwire.contract import errors
from tickwire.contract.codec import CodecError
from tickwire.contract.envelope import H_ERROR_CLASS, H_ERROR_KIND, Envelope
from tickwire.contract.parser import ParseError, ParseOutput
from tickwire.contract.records import Trade
from tickwire.normalize import parse_cli
from tickwire.normalize.pipeline import RawMessage
from tickwire.resources import shared_dir

DBN_FILE = shared_dir() / "data" / "dbn" / "test_data.mbp-10.dbn"


def corrupt_dbn() -> bytes:
    """A DBN file whose first record's length byte is wrong: databento_dbn panics (BaseException)."""
    data = bytearray(DBN_FILE.read_bytes())
    data[52] = 69
    return bytes(data)


def native_panic() -> BaseException:
    import databento_dbn as dbn

    dec = dbn.DBNDecoder()
    dec.write(corrupt_dbn())
    try:
        dec.decode()
    except BaseException as exc:  # the point: it is not an Exception
        return exc
    raise AssertionError("the corrupt DBN file decoded")


# ---- classification ------------------------------------------------------------------------------


def test_native_panic_is_a_base_exception_classified_as_bad_input() -> None:
    exc = native_panic()
    assert not isinstance(exc, Exception)
    assert errors.classify(exc) == "bad_input"


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (KeyboardInterrupt(), "exit"),
        (SystemExit(1), "exit"),
        (GeneratorExit(), "exit"),
        (httpx.ConnectError("refused"), "infra"),
        (httpx.ReadTimeout("slow"), "infra"),
        (ConnectionRefusedError(111, "refused"), "infra"),
        (SchemaRegistryError(503, 50003, "unavailable"), "infra"),
        (SchemaRegistryError(409, 409, "incompatible"), "internal"),
        (ParseError("bad frame"), "bad_input"),
        (CodecError("cannot encode"), "bad_input"),
        (RuntimeError("our bug"), "internal"),
        (KeyError("k"), "internal"),
    ],
)
def test_classify(exc: BaseException, kind: str) -> None:
    assert errors.classify(exc) == kind


def test_an_outage_inside_the_cause_chain_is_an_outage() -> None:
    try:
        try:
            raise httpx.ConnectError("refused")
        except httpx.ConnectError as inner:
            raise CodecError("unknown schema id 7") from inner
    except CodecError as exc:
        assert errors.classify(exc) == "infra"


# ---- the pipeline's boundary ---------------------------------------------------------------------


class PanickingParser(FakeParser):
    """Calls the real native decoder on its payload, as the DBN parser does."""

    def parse(self, payload: bytes, env: Envelope, state: dict[str, int]) -> ParseOutput:
        import databento_dbn as dbn

        dec = dbn.DBNDecoder()
        dec.write(payload)
        dec.decode()
        return ParseOutput()


def test_native_panic_in_a_parser_goes_to_the_dlq_and_the_next_record_is_processed() -> None:
    p, f = make(), Feed()
    p.get_parser = lambda source: PanickingParser()
    res = p.process(f.msg(corrupt_dbn()))
    assert res.status == "dlq"
    assert res.error_class == "PanicException"
    (o,) = res.outputs
    assert dict(o.headers or [])[H_ERROR_KIND] == b"bad_input"
    p.get_parser = lambda source: FakeParser()
    assert p.process(f.msg(GOOD)).status == "ok"


def test_real_databento_parser_panic_is_contained() -> None:
    f = Feed(source="databento")
    msg = f.msg(corrupt_dbn())
    res = make().process(msg)
    assert res.status == "dlq"
    assert res.error_class in ("PanicException", "ParseError")  # a length check may catch it first


class Interrupted(FakeParser):
    def parse(self, payload: bytes, env: Envelope, state: dict[str, int]) -> ParseOutput:
        raise KeyboardInterrupt


def test_keyboard_interrupt_is_never_swallowed() -> None:
    p, f = make(), Feed()
    p.get_parser = lambda source: Interrupted()
    with pytest.raises(KeyboardInterrupt):
        p.process(f.msg(GOOD))


class FlakyRegistry:
    """An encoder whose schema registry is down until ``up`` is set."""

    def __init__(self) -> None:
        self.up = False

    def encode(self, record: Any) -> bytes:
        if not self.up:
            raise httpx.ConnectError("[Errno 111] Connection refused")
        return CODEC.encode(record)


def test_registry_outage_raises_without_dlq_or_dedupe_step_then_the_retry_publishes() -> None:
    store: dict[Any, Any] = {}
    reg = FlakyRegistry()
    p, f = make(store), Feed()
    p.encode = reg.encode
    msg = f.msg(GOOD)
    st = p.store_for(msg.topic, msg.partition)
    with pytest.raises(errors.InfraError):
        p.process(msg)
    # No offset, no dedupe cursor: the retry is a first time.
    assert st.get(b"o") is None
    assert st.get(f"d|fake|s|{SESSION}".encode()) is None
    reg.up = True
    res = p.process(msg)  # the runtime retries the very same record
    assert res.status == "ok"
    (t,) = [CODEC.decode(o.value) for o in res.outputs]
    assert isinstance(t, Trade) and t.price == 25_000_500_000_000


class BuggyParser(FakeParser):
    def parse(self, payload: bytes, env: Envelope, state: dict[str, int]) -> ParseOutput:
        if b"25000.5" in payload:
            raise AttributeError("'NoneType' object has no attribute 'price'")  # our bug
        return super().parse(payload, env, state)


def test_internal_error_dlq_record_replayed_after_the_fix_produces_its_records() -> None:
    p, f = make(), Feed()
    p.get_parser = lambda source: BuggyParser()
    res = p.process(f.msg(GOOD))
    assert (res.status, res.error_kind) == ("dlq", "internal")
    (dlq,) = res.outputs
    assert dlq.topic == "fake.raw.dlq"
    h = dict(dlq.headers or [])
    assert (h[H_ERROR_CLASS], h[H_ERROR_KIND]) == (b"AttributeError", b"internal")
    later = dict(GOOD, p="25001")
    assert p.process(f.msg(later)).status == "ok"  # the stream goes on: its cursor is past the DLQ'd seq
    p.get_parser = lambda source: FakeParser()  # the fix is deployed
    f.offset += 1
    refed = RawMessage("fake.raw", 0, f.offset, dlq.key, dlq.value, dlq.headers or [])
    res = p.process(refed)
    assert res.status == "ok"
    (t,) = [CODEC.decode(o.value) for o in res.outputs]
    assert isinstance(t, Trade) and (t.price, t.seq, t.ts_event) == (25_000_500_000_000, 1, T0)
    f.offset += 1
    again = RawMessage("fake.raw", 0, f.offset, dlq.key, dlq.value, dlq.headers or [])
    assert p.process(again).status == "duplicate"  # re-fed twice: published once


def test_bad_input_dlq_record_is_marked_bad_input() -> None:
    res = make().process(Feed().msg(b"not json"))
    assert (res.status, res.error_kind) == ("dlq", "bad_input")


# ---- tickwire parse ------------------------------------------------------------------------------


def test_tickwire_parse_survives_a_corrupt_dbn_file(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.dbn"
    path.write_bytes(corrupt_dbn())
    args = argparse.Namespace(
        source="databento", file=str(path), stream=None, content_type=None, session=1, batch=100
    )
    out, err = io.StringIO(), io.StringIO()
    assert parse_cli.run(args, out, err) == 1
    (line,) = [json.loads(ln) for ln in err.getvalue().splitlines()]
    assert line["class"] in ("PanicException", "ParseError")


# ---- bridges: permanent write errors escalate ----------------------------------------------------


def _Msg(offset: int, record: Any) -> FakeMessage:
    return FakeMessage("stock_trades_realtime", offset, CODEC.encode(record))


class RefusingWriter:
    """Refuses every record of ``bad`` symbols (a permanent error on their key), writes the rest."""

    def __init__(self, bad: set[str]) -> None:
        self.bad = bad
        self.written: list[str] = []
        self.resets = 0

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def reset(self) -> None:
        self.resets += 1

    async def write(self, items: list[Any]) -> int:
        from tickwire.bridges.batch import PermanentWriteError

        refused = [i for i in items if i.record.symbol in self.bad]
        if refused:
            keys = tuple(sorted({f"market:{i.record.symbol}:trades" for i in refused}))
            raise PermanentWriteError("wrong_type", "WRONGTYPE test", refused, keys)
        self.written += [i.record.symbol for i in items]
        return len(items)


def _trade(i: int, sym: str) -> Trade:
    return Trade(
        symbol=sym, asset_class="equity", source="alpaca", stream="s", session=1, seq=i + 1,
        ts_event=T0, ts_recv=T0, price=1_000_000_000, size=1_000_000_000,
    )  # fmt: skip


def test_bridge_loop_dlqs_after_n_attempts_then_at_once_while_the_key_fails() -> None:
    import asyncio

    from tickwire.bridges.batch import BridgeLoop, PermanentWriteError
    from tickwire.bridges.config import RedisBridgeSettings

    s = RedisBridgeSettings(permanent_error_attempts=3, control_plane=False)
    w = RefusingWriter({"MSFT"})
    loop = BridgeLoop(s, "redis", w)
    sent: list[tuple[int, str]] = []
    loop._send_dlq = lambda bad: sent.extend((m.offset(), str(e)) for m, e in bad)  # type: ignore[method-assign]
    batch = [_Msg(i, _trade(i, sym)) for i, sym in enumerate(["AAPL", "MSFT", "AAPL"])]

    async def attempt(b: list[Any]) -> bool:
        try:
            await loop.handle(b)
            return True
        except PermanentWriteError:
            return False

    assert [asyncio.run(attempt(batch)) for _ in range(3)] == [False, False, True]
    assert sent == [(1, "WRONGTYPE test")] and w.written == ["AAPL", "AAPL"]
    # The key still fails: its next record goes to the DLQ at once, without retries.
    assert asyncio.run(attempt([_Msg(3, _trade(3, "MSFT")), _Msg(4, _trade(4, "IBM"))]))
    assert sent[-1] == (3, "WRONGTYPE test") and w.written[-1] == "IBM"


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        ("maximum messages exceeded", "stream_full"),
        ("maximum bytes exceeded", "stream_full"),
        ("maximum messages per subject exceeded", "stream_full"),
        ("insufficient resources", "stream_full"),
        ("message size exceeds maximum allowed", "too_large"),
        ("no responders", None),
        ("stream not found", None),
    ],
)
def test_jetstream_refusals_classified(description: str, reason: str | None) -> None:
    from tickwire.bridges.nats_bridge import _permanent

    assert _permanent(description) == reason


def test_redis_errors_classified() -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import ResponseError

    from tickwire.bridges.redis_keys import permanent_reason

    wrong = ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")
    assert permanent_reason(wrong) == "wrong_type"
    assert permanent_reason(ResponseError("OOM command not allowed when used memory > 'maxmemory'.")) == "oom"
    assert permanent_reason(ResponseError("BUSY Redis is busy running a script")) is None
    from redis.exceptions import OutOfMemoryError

    assert permanent_reason(OutOfMemoryError("command not allowed when used memory > 'maxmemory'.")) == "oom"
    assert errors.classify(RedisConnectionError("down")) == "infra"


# ---- producers and health ------------------------------------------------------------------------


def test_fatal_producer_error_makes_produce_raise_never_retry() -> None:
    from confluent_kafka import KafkaError

    from tickwire.ingest.producer import FatalProducerError, RawProducer

    p = RawProducer("127.0.0.1:1", client_id="hf-unit")  # never connects: no broker needed
    assert p.produce("t", b"v", None, []) is True
    p._on_error(KafkaError(KafkaError._FATAL, "out-of-order sequence", fatal=True))
    with pytest.raises(FatalProducerError, match="_FATAL"):
        p.produce("t", b"v", None, [])
    p._p.purge()


def test_health_endpoints_report_reasons() -> None:
    import urllib.error
    import urllib.request

    from tickwire.infra.process import free_port
    from tickwire.runtime import httpd

    httpd.HEALTH.clear()  # checks other tests of this process registered
    port = httpd.serve(free_port()) or 0
    state: dict[str, str | None] = {"ready": "broker unreachable: buffering locally"}
    httpd.HEALTH.readiness("hf-broker", lambda: state["ready"])

    def get(path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                return r.status, r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    try:
        assert get("/healthz")[0] == 200
        code, body = get("/readyz")
        assert code == 503
        assert json.loads(body)["checks"]["hf-broker"] == "broker unreachable: buffering locally"
        state["ready"] = None
        code, body = get("/readyz")
        assert (code, json.loads(body)["ready"]) == (200, True)
        code, body = get("/metrics")
        assert code == 200 and b"# HELP" in body
    finally:
        httpd.HEALTH.clear()


def test_bridge_registry_outage_while_decoding_is_retried_not_dlqd() -> None:
    import asyncio

    from tickwire.bridges.batch import BridgeLoop
    from tickwire.bridges.config import RedisBridgeSettings

    s = RedisBridgeSettings(control_plane=False, schema_registry_url="http://127.0.0.1:1")
    loop = BridgeLoop(s, "redis", RefusingWriter(set()))
    sent: list[Any] = []
    loop._send_dlq = sent.extend  # type: ignore[method-assign,assignment]
    unknown_id = b"\x00\x00\x00\x7f\xff" + b"\x02"  # a registry-assigned id: must be looked up
    msg = _Msg(0, _trade(0, "AAPL"))
    msg._v = unknown_id
    with pytest.raises(errors.InfraError, match="decoding"):
        asyncio.run(loop.handle([msg]))
    assert sent == [] and loop.failing


def test_redis_bridge_caches_are_bounded() -> None:
    from tickwire.bridges.redis_keys import bound_caches

    tickers = {f"S{i}": i for i in range(11)}
    last = {f"S{i}": float(i) for i in range(11)}
    bound_caches(10, tickers=tickers, last_update=last)
    assert tickers == {}  # re-read from Redis on demand
    assert sorted(last) == ["S10", "S6", "S7", "S8", "S9"]  # the most recently written half
