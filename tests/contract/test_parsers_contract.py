"""Contract test over every registered parser, on recorded / fixture inputs.

For each vendor in ``tickwire.vendors.names()`` the table ``INPUTS`` names its inputs. Every record
must: encode with the Avro codec and decode back equal; validate against its schema; carry amounts that
equal a decimal text (or wire number) of the raw payload exactly; carry ns timestamps (2000..2100) equal
to a vendor time in the payload (or the receive time for vendors without event time) and ts_recv equal
to the envelope's (DBN: the record's own ts_recv); use a canonical symbol for its asset class; and set
side/side_rule per the vendor's rule. A vendor is skipped only when its parser module does not exist yet.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.util
import json
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import databento_dbn as dbn
import fastavro
import msgpack
import pytest

from tickwire.contract.codec import Codec, avro_datum, load_schema, plain_schema, schema_name
from tickwire.contract.envelope import Envelope, context_header
from tickwire.contract.exact import AmountError, float_to_units, parse_units
from tickwire.contract.records import (
    Bar,
    BookUpdate,
    IndicatorPoint,
    Instrument,
    NewsSentiment,
    OptionChain,
    Quote,
    Trade,
)
from tickwire.contract.symbols import SYMBOL_PATTERNS, rfc3339_to_ns
from tickwire.normalize.parse_cli import dbn_items, recorded_items
from tickwire.vendors import get_parser
from tickwire.vendors import names as vendors

ROOT = Path(__file__).resolve().parents[2]
FIX = ROOT / "tests" / "fixtures"
REC = Path("/work/shared/data/recorded")
DBN_DIR = Path("/work/shared/data/dbn")
MSGPACK_TS_RECV = 1_766_000_000 * 10**9  # after every fixture event (2025-12-17)
FIX_TS_RECV = 1_798_761_600 * 10**9  # 2027-01-01, after the recorded LP session
NS_2000, NS_2100 = 946_684_800 * 10**9, 4_102_444_800 * 10**9

# vendor -> inputs: (kind, files, stream). kind: "session" (recorded format, files concatenated in
# order into one session: REST answers first), "msgpack" (concatenated frames), "dbn" (one file),
# "fix" (one FIX message per line, as a QuickFIX/J LP sent them).
INPUTS: dict[str, list[tuple[str, list[Path], str | None]]] = {
    "alpaca": [
        ("session", [FIX / "alpaca" / "stocks-iex.session.txt"], None),
        ("session", [FIX / "alpaca" / "crypto-us.session.txt"], None),
        ("msgpack", [FIX / "alpaca" / "crypto-us.msgpack"], "crypto.us"),
        ("msgpack", [FIX / "alpaca" / "options-opra.msgpack"], "options.opra"),
    ],
    "alphavantage": [("session", [FIX / "alphavantage" / "session.txt"], None)],
    "binance": [("session", [REC / "cryptofeed-BINANCE.0", REC / "cryptofeed-BINANCE.ws.1.0"], None)],
    "coinbase": [("session", [REC / "cryptofeed-COINBASE.0", REC / "cryptofeed-COINBASE.ws.28.0"], None)],
    "databento": [("dbn", [p], None) for p in sorted(DBN_DIR.glob("*.dbn*"))],
    "fix": [("fix", [FIX / "fix" / "lp-session.fix"], "lp-alpha")],
    "ibkr": [("tws", [FIX / "ibkr" / "session.tws.jsonl"], None)],  # regenerate: make_session.py there
    "polygon": [
        ("session", [FIX / "polygon" / "stocks.session.txt"], None),
        ("session", [FIX / "polygon" / "options.session.txt"], None),
    ],
}

Item = tuple[bytes, Envelope]


def _items(vendor: str, kind: str, files: list[Path], stream: str | None) -> Iterator[Item]:
    parser = get_parser(vendor)
    seq = 0
    if kind == "session":
        lines = [ln for f in files for ln in f.read_bytes().splitlines()]
        hook = getattr(parser, "stream_for_url", None)
        for _n, payload, s, ts in recorded_items(lines, lambda u: (hook(u) if hook else None) or "ws"):
            seq += 1
            yield payload, Envelope(vendor, s or "ws", 1, seq, ts or 0, "json")
    elif kind == "msgpack":
        data = files[0].read_bytes()
        unpacker = msgpack.Unpacker(raw=False)
        unpacker.feed(data)
        start = 0
        for _ in unpacker:
            seq += 1
            yield (
                data[start : unpacker.tell()],
                Envelope(vendor, stream or "", 1, seq, MSGPACK_TS_RECV, "msgpack"),
            )
            start = unpacker.tell()
    elif kind == "tws":  # one JSON line per TWS message: its context, ts_recv and fields as sent
        for line in files[0].read_bytes().splitlines():
            seq += 1
            m = json.loads(line)
            payload = b"".join(f.encode() + b"\0" for f in m["fields"])
            context = context_header(m["ctx"])[1].decode()
            yield payload, Envelope(vendor, "tws.1", 1, seq, m["ts_recv"], "tws", context=context)
    elif kind == "fix":
        for line in files[0].read_bytes().splitlines():
            seq += 1
            yield line, Envelope(vendor, stream or "", 1, seq, FIX_TS_RECV, "fix")
    else:
        for _n, payload, _s, _ts in dbn_items(files[0].read_bytes(), 3):
            seq += 1
            yield payload, Envelope(vendor, "replay.test", 1, seq, 2_000_000_000 * 10**9, "dbn")


# ---- what the raw payload says ------------------------------------------------------------------------


class _Num(str):
    pass


def _walk(x: Any) -> Iterator[Any]:
    yield x
    if isinstance(x, dict):
        for v in x.values():
            yield from _walk(v)
    elif isinstance(x, list):
        for v in x:
            yield from _walk(v)


class RawFacts:
    """Amount and time values present in one raw payload, and its messages (JSON/msgpack)."""

    def __init__(self, payload: bytes, env: Envelope) -> None:
        self.amounts: set[int] = set()
        self.times: set[int] = {env.ts_recv}
        self.doc: Any = None
        self.dbn: list[Any] = []
        if env.content_type == "dbn":
            dec = dbn.DBNDecoder(upgrade_policy=dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
            dec.write(payload)
            self.dbn = dec.decode()[1:]
            return
        if env.content_type == "fix":
            self._fix(payload)
            return
        if env.content_type == "tws":
            self._tws(payload, env)
            return
        if env.content_type == "msgpack":
            self.doc = msgpack.unpackb(payload, raw=False, timestamp=0)
        else:
            self.doc = json.loads(payload, parse_float=_Num, parse_int=_Num)
        for v in _walk(self.doc):
            self._amount(v)
            self._time(v)

    def _tws(self, payload: bytes, env: Envelope) -> None:
        """NUL-terminated fields: decimals are amounts, epoch seconds are times; book messages add the
        levels of the exchange's book so far, kept by an independent model (``_TwsBooks``)."""
        fields = payload.decode().split("\0")[:-1]
        for v in fields:
            self._amount(v)
            if v.isdigit() and NS_2000 <= int(v) * 10**9 < NS_2100:
                self.times.add(int(v) * 10**9)
        self.amounts |= _TWS_BOOKS.apply(fields, env)

    def _amount(self, v: Any) -> None:
        try:
            if isinstance(v, float):
                self.amounts.add(float_to_units(v))
            elif isinstance(v, int) and not isinstance(v, bool):
                self.amounts.add(v * 10**9)
            elif isinstance(v, str):
                self.amounts.add(parse_units(v))
        except AmountError:
            pass

    def _fix(self, payload: bytes) -> None:
        """tag=value: every decimal value is an amount; times are 272 x 273 (and 52 SendingTime)."""
        fields = [f.split(b"=", 1) for f in payload.split(b"\x01") if b"=" in f]
        for _tag, value in fields:
            self._amount(value.decode())
        dates = {v.decode() for t, v in fields if t == b"272"}
        times = {v.decode() for t, v in fields if t == b"273"}
        stamps = {(v[:8].decode(), v[9:].decode()) for t, v in fields if t == b"52"}
        for d, t in {(d, t) for d in dates for t in times} | stamps:
            whole, _, frac = t.partition(".")
            day = dt.datetime.strptime(d + whole, "%Y%m%d%H:%M:%S").replace(tzinfo=dt.UTC)
            self.times.add(int(day.timestamp()) * 10**9 + int(frac.ljust(9, "0")))

    def _time(self, v: Any) -> None:
        if isinstance(v, msgpack.Timestamp):
            self.times.add(v.to_unix_nano())
        elif isinstance(v, _Num) and v.isdigit():
            n = int(v)
            for scale in (10**6, 10**3, 1):  # ms, µs, ns epochs
                if NS_2000 <= n * scale < NS_2100:
                    self.times.add(n * scale)
        elif isinstance(v, str) and len(v) >= 20:
            with contextlib.suppress(ValueError):
                self.times.add(rfc3339_to_ns(v))

    def messages(self) -> list[dict[str, Any]]:
        return [d for d in _walk(self.doc) if isinstance(d, dict)]


class _TwsBooks:
    """TWS books by (session, symbol, exchange): depth rows by position (insert shifts down, delete shifts
    up), top-of-book ticks; 1101/2103/317 drop the books of their scope. Amounts: per-price sums."""

    def __init__(self) -> None:
        self.rows: dict[tuple[int, str, str], dict[str, list[tuple[str, str]]]] = {}
        self.tops: dict[tuple[int, str, str], dict[str, tuple[str, str]]] = {}

    def apply(self, f: list[str], env: Envelope) -> set[int]:
        ctx = env.context_map()
        if env.seq == 1:
            self.rows.clear()
            self.tops.clear()
        k = (env.session, ctx.get("symbol", ""), ctx.get("exchange", ""))
        if f[0] == "4" and f[3] in ("1101", "2103", "317"):
            sym, ex = k[1], k[2]
            for books in (self.rows, self.tops):
                for key in [key for key in books if (not sym or key[1] == sym) and (not ex or key[2] == ex)]:
                    del books[key]
        elif f[0] in ("12", "13"):
            pos, op, side, price, size = (f[3], f[4], f[5], f[6], f[7]) if f[0] == "12" else (f[3], *f[5:9])
            rows = self.rows.setdefault(k, {"0": [], "1": []})[side]
            if op == "0":
                rows.insert(int(pos), (price, size))
            elif op == "1":
                rows[int(pos)] = (price, size)
            else:
                del rows[int(pos)]
        elif f[0] in ("1", "2") and f[3] in ("0", "1", "2", "3"):
            top = self.tops.setdefault(k, {})
            side = "bid" if f[3] in ("0", "1") else "ask"
            price, size = top.get(side, ("0", "0"))
            top[side] = (f[4], f[5]) if f[0] == "1" else (price, f[4])
        out: set[int] = set()
        for rows in self.rows.get(k, {}).values():
            sums: dict[str, Any] = {}
            for price, size in rows:
                sums[price] = sums.get(price, 0) + parse_units(size)
            out |= {parse_units(p) for p in sums} | set(sums.values())
        for price, size in self.tops.get(k, {}).values():
            out |= {parse_units(price), parse_units(size)}
        return out


_TWS_BOOKS = _TwsBooks()


def _amounts(rec: Any) -> list[tuple[str, int]]:
    out: list[tuple[str, int]] = []
    if isinstance(rec, Trade):
        out += [("price", rec.price), ("size", rec.size)]
    elif isinstance(rec, Quote):
        out += [
            ("bid_price", rec.bid_price),
            ("bid_size", rec.bid_size),
            ("ask_price", rec.ask_price),
            ("ask_size", rec.ask_size),
        ]
    elif isinstance(rec, Bar):
        out += [(f, getattr(rec, f)) for f in ("open", "high", "low", "close", "volume", "vwap")]
    elif isinstance(rec, BookUpdate):
        for side in ("bids", "asks"):
            for i, lv in enumerate(getattr(rec, side)):
                out += [(f"{side}[{i}].price", lv.price), (f"{side}[{i}].size", lv.size)]
    elif isinstance(rec, Instrument):
        out += [(f, getattr(rec, f)) for f in ("strike", "tick_size", "multiplier")]
    elif isinstance(rec, OptionChain):
        for i, c in enumerate(rec.contracts):
            out += [(f"contracts[{i}].{f}", getattr(c, f)) for f in _OPTION_AMOUNTS]
    elif isinstance(rec, NewsSentiment):
        for i, a in enumerate(rec.articles):
            out += [(f"articles[{i}].overall_score", a.overall_score)]
            out += [(f"articles[{i}].topics[{k}]", v) for k, v in a.topics.items()]
            for t in a.tickers:
                out += [
                    (f"articles[{i}].{t.ticker}.relevance", t.relevance),
                    (f"articles[{i}].{t.ticker}.score", t.score),
                ]
    elif isinstance(rec, IndicatorPoint):
        out += [(f"values[{k}]", v) for k, v in rec.values.items()]
    return [(k, v) for k, v in out if v is not None]


_OPTION_AMOUNTS = (
    "strike", "last", "mark", "bid", "bid_size", "ask", "ask_size", "volume", "open_interest",
    "implied_volatility", "delta", "gamma", "theta", "vega", "rho",
)  # fmt: skip


def _av_local_ns(text: str, tz: str) -> int:
    """An Alpha Vantage local time (date, date + HH:MM[:SS], or YYYYMMDDTHHMMSS) in zone ``tz`` -> UTC ns."""
    from zoneinfo import ZoneInfo

    if "T" in text and "-" not in text:
        t = dt.datetime.strptime(text, "%Y%m%dT%H%M%S")
    else:
        t = dt.datetime.fromisoformat(text)
    return int(t.replace(tzinfo=ZoneInfo(tz)).timestamp()) * 10**9


def _alphavantage_times(doc: Any) -> set[int]:
    """Technicals point times, converted with the body's own ``Time Zone``."""
    if not isinstance(doc, dict):
        return set()
    meta = doc.get("Meta Data", {})
    tz = next((v for k, v in meta.items() if k.endswith("Time Zone")), "US/Eastern")
    points = next((v for k, v in doc.items() if k.startswith("Technical Analysis: ")), {})
    return {_av_local_ns(t, tz) for t in points}


def _alphavantage_exact(rec: Any, facts: RawFacts, env: Envelope) -> list[str]:
    """Keys and shapes against the request (the stream's query) and the body."""
    query = dict(urllib.parse.parse_qsl(env.stream.partition("?")[2]))
    errs = []
    if rec.symbol != query.get("symbol", query.get("tickers")):
        errs.append(f"symbol {rec.symbol} != request {query}")
    doc = facts.doc
    if isinstance(rec, OptionChain):
        rows = doc["data"]
        got = [(c.contract_id, c.right, c.expiry.isoformat()) for c in rec.contracts]
        want = [(r["contractID"], r["type"][0].upper(), r["expiration"]) for r in rows]
        if got != want:
            errs.append("chain contracts differ from the body's rows")
        for c, r in zip(rec.contracts, rows, strict=False):
            if (c.delta is None) != ("delta" not in r) or (c.implied_volatility is None) != (
                "implied_volatility" not in r
            ):
                errs.append(f"{c.contract_id}: greeks presence differs from the row")
    elif isinstance(rec, NewsSentiment):
        feed = doc["feed"]
        if [a.url for a in rec.articles] != [a["url"] for a in feed]:
            errs.append("articles differ from the feed")
        for a, raw in zip(rec.articles, feed, strict=False):
            if a.time_published != _av_local_ns(raw["time_published"], "US/Eastern"):
                errs.append(f"{a.url}: time_published {a.time_published} != raw {raw['time_published']}")
    elif isinstance(rec, IndicatorPoint):
        points = next(v for k, v in doc.items() if k.startswith("Technical Analysis: "))
        tz = next(v for k, v in doc["Meta Data"].items() if k.endswith("Time Zone"))
        row = next((p for t, p in points.items() if _av_local_ns(t, tz) == rec.ts_event), None)
        if row is None or {k: parse_units(v) for k, v in row.items()} != rec.values:
            errs.append(f"point at {rec.ts_event}: values {rec.values} != the body's row {row}")
        if rec.indicator != query.get("function"):
            errs.append(f"indicator {rec.indicator} != request {query.get('function')}")
    return errs


def _dbn_amounts(r: Any) -> set[int]:
    vals: set[int] = set()
    for name in dir(r):
        if name.startswith(("_", "pretty")):
            continue
        v = getattr(r, name, None)
        if isinstance(v, int) and not isinstance(v, bool):
            vals |= {v, v * 10**9}
    for lv in getattr(r, "levels", []) or []:
        for f in ("bid_px", "ask_px"):
            vals.add(getattr(lv, f))
        for f in ("bid_sz", "ask_sz"):
            vals.add(getattr(lv, f) * 10**9)
    return vals


# ---- side rules ----------------------------------------------------------------------------------------


def _expected_side(vendor: str, rec: Trade, facts: RawFacts) -> tuple[str, str] | None:
    """(side, side_rule) the vendor's convention dictates for this trade, or None if not derivable."""
    if vendor == "databento":
        raw = facts.dbn[rec.sub_seq]
        return {"A": ("sell", "vendor"), "B": ("buy", "vendor")}.get(str(raw.side), ("unknown", "none"))
    msgs = facts.messages()
    if vendor == "alpaca":
        m = facts.doc[rec.sub_seq] if isinstance(facts.doc, list) else facts.doc
        tks = m.get("tks")
        return {"B": ("buy", "vendor"), "S": ("sell", "vendor")}.get(tks, ("unknown", "none"))
    if vendor == "binance":
        for m in msgs:
            if "m" in m and rec.trade_id in (str(m.get("a")), str(m.get("t"))):
                return ("sell" if m["m"] else "buy", rec.side_rule)  # m: buyer is maker -> seller aggressed
        return None
    if vendor == "coinbase":
        for m in msgs:
            if m.get("type") in ("match", "last_match") and str(m.get("trade_id")) == rec.trade_id:
                return ("sell" if m["side"] == "buy" else "buy", "maker_inverted")  # side = maker's side
        return None
    return None


def _alpaca_exact(rec: Any, facts: RawFacts) -> list[str]:
    """Field-by-field: the record's amounts and time equal the message's own fields."""
    if not isinstance(facts.doc, list):
        return []
    m = facts.doc[rec.sub_seq]
    conv = float_to_units if isinstance(m.get("t"), msgpack.Timestamp) else None

    def units(v: Any) -> int:
        if isinstance(v, float) and conv:
            return conv(v)
        return parse_units(str(v))

    fields = {
        Trade: {"price": "p", "size": "s"},
        Quote: {"bid_price": "bp", "bid_size": "bs", "ask_price": "ap", "ask_size": "as"},
        Bar: {"open": "o", "high": "h", "low": "l", "close": "c", "volume": "v", "vwap": "vw"},
    }
    errs = [
        f"{f}={getattr(rec, f)} != raw {m[k]!r}"
        for f, k in fields.get(type(rec), {}).items()
        if k in m and getattr(rec, f) != units(m[k])
    ]
    t = m["t"]
    want = t.to_unix_nano() if isinstance(t, msgpack.Timestamp) else rfc3339_to_ns(t)
    if rec.ts_event != want:
        errs.append(f"ts_event {rec.ts_event} != raw {t}")
    if rec.symbol != m["S"] and rec.asset_class != "option":
        errs.append(f"symbol {rec.symbol} != raw {m['S']}")
    return errs


_POLYGON_LOT_FIELDS = ("bid_size", "ask_size")


def _polygon_exact(rec: Any, facts: RawFacts) -> list[str]:
    """Field by field against the event: amounts from the number's text (stock quote sizes are round
    lots of 100 shares), ts_event = ms time (bars: window start) x 1e6, option fields from the ticker."""
    m = facts.doc[rec.sub_seq]
    lot = 100 if isinstance(rec, Quote) and rec.asset_class == "equity" else 1
    fields: dict[type[Any], dict[str, tuple[str, int]]] = {
        Trade: {"price": ("p", 1), "size": ("ds" if "ds" in m else "s", 1)},
        Quote: {
            "bid_price": ("bp", 1),
            "bid_size": ("bs", lot),
            "ask_price": ("ap", 1),
            "ask_size": ("as", lot),
        },
        Bar: {"open": ("o", 1), "high": ("h", 1), "low": ("l", 1), "close": ("c", 1), "volume": ("v", 1)},
    }
    errs = [
        f"{f}={getattr(rec, f)} != raw {m[k]!r} x {n}"
        for f, (k, n) in fields.get(type(rec), {}).items()
        if getattr(rec, f) != parse_units(str(m[k])) * n
    ]
    want = int(m["s" if isinstance(rec, Bar) else "t"]) * 10**6
    if rec.ts_event != want:
        errs.append(f"ts_event {rec.ts_event} != raw ms x 1e6 {want}")
    sym = str(m["sym"])
    if sym.startswith("O:"):
        tail = sym[-15:]  # YYMMDD C|P 8-digit strike: the root is whatever is left
        root = sym[2:-15]
        if rec.asset_class != "option" or rec.symbol != sym[2:] or getattr(rec, "underlying", root) != root:
            errs.append(f"option symbol/underlying of {sym} wrong: {rec.symbol}")
        if isinstance(rec, Trade):
            want_opt = (f"20{tail[:2]}-{tail[2:4]}-{tail[4:6]}", tail[6], int(tail[7:]) * 10**6)
            got = (rec.expiry.isoformat() if rec.expiry else None, rec.right, rec.strike)
            if got != want_opt:
                errs.append(f"option fields {got} != ticker {want_opt}")
    elif rec.symbol != sym or rec.asset_class != "equity":
        errs.append(f"symbol {rec.symbol} != raw {sym}")
    return errs


# ---- the test ------------------------------------------------------------------------------------------


def _check(vendor: str, rec: Any, facts: RawFacts, env: Envelope, codec: Codec) -> list[str]:
    errs: list[str] = []
    data = codec.encode(rec)
    if codec.decode(data) != rec:
        errs.append("Avro round trip differs")
    schema = fastavro.parse_schema(plain_schema(load_schema(schema_name(rec))), named_schemas={})
    try:
        fastavro.validation.validate(avro_datum(rec), schema, raise_errors=True)
    except Exception as exc:
        errs.append(f"schema validation: {exc}")
    if vendor == "databento":
        raw = facts.dbn[rec.sub_seq]
        allowed = _dbn_amounts(raw)
        errs += [f"{k}={v} not a raw DBN value" for k, v in _amounts(rec) if v not in allowed and v != 0]
        if rec.ts_event != raw.ts_event:
            errs.append(f"ts_event {rec.ts_event} != DBN {raw.ts_event}")
        want_recv = getattr(raw, "ts_recv", None)
        if want_recv is not None and rec.ts_recv != want_recv:
            errs.append(f"ts_recv {rec.ts_recv} != DBN {want_recv}")
    else:
        if vendor == "alphavantage":
            facts.times |= _alphavantage_times(facts.doc)
        lots = _POLYGON_LOT_FIELDS if vendor == "polygon" and isinstance(rec, Quote) else ()
        errs += [
            f"{k}={v} not a decimal in the payload"
            for k, v in _amounts(rec)
            if v not in facts.amounts and not (k in lots and rec.asset_class == "equity")
        ]
        if rec.ts_event not in facts.times:
            errs.append(f"ts_event {rec.ts_event} is no vendor time in the payload")
        if rec.ts_recv != env.ts_recv:
            errs.append(f"ts_recv {rec.ts_recv} != envelope {env.ts_recv}")
    for f in ("ts_event", "ts_recv"):
        if not NS_2000 <= getattr(rec, f) < NS_2100:
            errs.append(f"{f}={getattr(rec, f)} is not ns between 2000 and 2100")
    if not SYMBOL_PATTERNS[rec.asset_class].match(rec.symbol):
        errs.append(f"symbol {rec.symbol!r} not canonical for {rec.asset_class}")
    if (rec.source, rec.stream, rec.session, rec.seq) != (env.source, env.stream, env.session, env.seq):
        errs.append("provenance (source, stream, session, seq) differs from the envelope")
    if isinstance(rec, Trade):
        if (rec.side == "unknown") != (rec.side_rule == "none"):
            errs.append(f"side {rec.side} inconsistent with side_rule {rec.side_rule}")
        want = _expected_side(vendor, rec, facts)
        if want is not None and (rec.side, rec.side_rule) != want:
            errs.append(f"side {(rec.side, rec.side_rule)} != vendor rule {want}")
    if vendor == "alpaca":
        errs += _alpaca_exact(rec, facts)
    if vendor == "polygon":
        errs += _polygon_exact(rec, facts)
    if vendor == "alphavantage":
        errs += _alphavantage_exact(rec, facts, env)
    return errs


@pytest.mark.parametrize("vendor", vendors())
def test_parser_contract(vendor: str) -> None:
    if importlib.util.find_spec(f"tickwire.vendors.{vendor}.parser") is None:
        pytest.skip(f"parser module tickwire/vendors/{vendor}/parser.py does not exist yet")
    assert vendor in INPUTS, f"add contract inputs for vendor {vendor!r} to INPUTS"
    inputs = [i for i in INPUTS[vendor] if all(p.exists() for p in i[1])]
    if not inputs:
        pytest.skip(f"no input files for {vendor}")
    parser = get_parser(vendor)
    codec = Codec()
    failures: list[str] = []
    n_records = 0
    kinds: set[str] = set()
    for kind, files, stream in inputs:
        state = parser.new_state(None)
        for payload, env in _items(vendor, kind, files, stream):
            out = parser.parse(payload, env, state)
            facts = RawFacts(payload, env)
            for rec in out.records:
                n_records += 1
                kinds.add(type(rec).__name__)
                failures += [
                    f"{files[-1].name} seq {env.seq} {type(rec).__name__}[{rec.sub_seq}]: {e}"
                    for e in _check(vendor, rec, facts, env, codec)
                ]
            for gap in out.gaps:
                assert codec.decode(codec.encode(gap)) == gap
    assert n_records > 0, f"{vendor}: no records from its inputs"
    assert not failures, f"{len(failures)} contract violations, first ones:\n" + "\n".join(failures[:15])


def test_contract_checks_can_fail() -> None:
    """The checker flags a wrong amount, a wrong time, a wrong side and a non-canonical symbol."""
    import msgspec

    payload = (
        b'[{"T":"t","S":"BTC/USD","p":72104.12,"s":0.000194,"t":"2024-03-12T10:27:48.858228144Z",'
        b'"i":3447,"tks":"S"}]'
    )
    env = Envelope("alpaca", "crypto.us", 1, 1, 1_710_239_269_140_662_000, "json")
    (rec,) = get_parser("alpaca").parse(payload, env, get_parser("alpaca").new_state(None)).records
    facts = RawFacts(payload, env)
    codec = Codec()
    assert _check("alpaca", rec, facts, env, codec) == []
    for change, needle in [
        ({"price": rec.price + 1}, "price"),
        ({"ts_event": rec.ts_event - 1000}, "ts_event"),
        ({"side": "buy"}, "side"),
        ({"symbol": "BTC-USD"}, "symbol"),
    ]:
        bad = msgspec.structs.replace(rec, **change)
        errs = _check("alpaca", bad, facts, env, codec)
        assert any(needle in e for e in errs), (change, errs)
