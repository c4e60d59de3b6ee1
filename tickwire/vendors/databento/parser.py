"""Databento DBN -> canonical records.

Raw payload contract (shared with ``tickwire replay dbn``): one raw value is a complete DBN byte stream,
the source file's encoded ``Metadata`` (with its symbol mappings) followed by 1..N of that file's
records in file order, so any single message decodes alone (replay from any offset). zstd-compressed
streams are accepted too.

Mapping: trades -> Trade (side A = sell aggressor, B = buy, N = unknown); MBP-1 / TBBO -> Quote, plus
a Trade when the record's action is 'T'; MBP-10 -> BookUpdate(snapshot, depth=10, level counts) plus
the Trade on action 'T'; OHLCV -> Bar (ts_event = interval open, as DBN stamps it); definition ->
Instrument. MBO, status, statistics, imbalance, system/error records are skipped and counted.

Time: the canonical ``ts_recv`` is the DBN record's ``ts_recv`` (the vendor's capture time), never the
envelope's (for replays that is the replay time): normalizing the same file twice gives the same
records. OHLCV carries no ts_recv: we use the interval close (ts_event + length), the earliest instant
the bar was knowable.

Prices are int64 1e-9 units (``i64::MAX`` = undefined): undefined book levels are dropped, an
undefined quote side is price 0 size 0. Symbols come from the metadata symbol mappings for the
record's UTC date (``instrument_id`` is unique per day only), then from definitions seen earlier.
Asset class comes from the dataset (GLBX.* future, OPRA.* option, other equities venues equity).

Sequence: DBN ``sequence`` is the venue channel's sequence, so a per-instrument subset skips numbers
legitimately. The last sequence per instrument is tracked; a jump becomes Gap(vendor_seq_jump) only
when the state is created with ``{"contiguous_sequence": True}`` (full-channel data); a regression is
counted in ``state.seq_regressions``.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, cast

import databento_dbn as dbn

from tickwire.contract.envelope import Envelope
from tickwire.contract.parser import ParseError, ParseOutput, seq_gap
from tickwire.contract.records import (
    AssetClass,
    Bar,
    BookUpdate,
    Instrument,
    Level,
    OptionRight,
    Quote,
    Record,
    Timeframe,
    Trade,
)
from tickwire.contract.symbols import SymbolError, parse_option
from tickwire.vendors.databento.framing import SymbolMap, check_records, symbol_map

UNDEF_PRICE = (1 << 63) - 1
UNDEF_TS = (1 << 64) - 1
UNDEF_I32 = (1 << 31) - 1
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
NS_PER_DAY = 86_400 * 10**9
_EPOCH = dt.date(1970, 1, 1)
_SIDE = {"A": ("sell", "vendor"), "B": ("buy", "vendor")}
# The same by enum member: ``str(r.side)`` costs twice the dict lookup. Members are their values at run time.
_SIDE_ENUM: dict[Any, tuple[str, str]] = {dbn.Side.ASK: _SIDE["A"], dbn.Side.BID: _SIDE["B"]}


class _Canon(dict[str, str]):
    """raw symbol -> canonical symbol for non-option asset classes (``raw.strip()``), filled on demand."""

    def __missing__(self, raw: str) -> str:
        if len(self) > 100_000:
            self.clear()
        sym = self[raw] = raw.strip()
        return sym


_CANON = _Canon()
_OHLCV: dict[int, tuple[Timeframe, int]] = {
    32: ("1s", 10**9),
    33: ("1m", 60 * 10**9),
    34: ("1h", 3600 * 10**9),
    35: ("1d", NS_PER_DAY),
    36: ("1d", NS_PER_DAY),
}
_SCHEMA_TF: dict[str, tuple[Timeframe, int]] = {
    "ohlcv-1s": _OHLCV[32],
    "ohlcv-1m": _OHLCV[33],
    "ohlcv-1h": _OHLCV[34],
    "ohlcv-1d": _OHLCV[35],
}


def asset_class_for(dataset: str) -> AssetClass:
    if dataset.startswith(("GLBX", "IFEU", "NDEX", "IFUS", "IFLL", "XEUR")):
        return "future"
    if dataset.startswith("OPRA"):
        return "option"
    return "equity"


@dataclass
class DatabentoState:
    contiguous_sequence: bool = False
    maps: dict[bytes, SymbolMap] = field(default_factory=dict)  # keyed by the encoded metadata
    definitions: dict[int, str] = field(default_factory=dict)  # instrument_id -> raw symbol (latest)
    last_seq: dict[int, int] = field(default_factory=dict)
    seq_regressions: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def _decode(payload: bytes, state: DatabentoState) -> tuple[SymbolMap, list[Any]]:
    # The stubs type enum members as their values; they are real members at run time.
    v3 = cast(dbn.VersionUpgradePolicy, dbn.VersionUpgradePolicy.UPGRADE_TO_V3)
    if payload[:4] == ZSTD_MAGIC:
        dec = dbn.DBNDecoder(compression=cast(dbn.Compression, dbn.Compression.ZSTD), upgrade_policy=v3)
    else:
        if payload[:3] != b"DBN":
            raise ParseError("payload does not start with DBN metadata")
        dec = dbn.DBNDecoder(upgrade_policy=v3)
    expected = check_records(payload) if payload[:3] == b"DBN" else None
    try:
        dec.write(payload)
        recs = dec.decode()
        rest = len(dec.buffer())
    except (KeyboardInterrupt, SystemExit, GeneratorExit):
        raise
    except BaseException as exc:  # DBNError, ValueError; the native decoder's panic is a BaseException
        raise ParseError(f"undecodable DBN: {type(exc).__name__}: {exc}") from None
    if not recs or not isinstance(recs[0], dbn.Metadata):
        raise ParseError("DBN stream without metadata")
    if rest or (expected is not None and len(recs) - 1 != expected):
        raise ParseError(f"DBN stream truncated: {len(recs) - 1} whole records and {rest} bytes left over")
    md = recs[0]
    key = payload[: 8 + int.from_bytes(payload[4:8], "little")] if payload[:3] == b"DBN" else md.encode()
    smap = state.maps.get(key)
    if smap is None:
        if len(state.maps) > 64:  # a replay uses few files; bound memory anyway
            state.maps.clear()
        smap = state.maps[key] = symbol_map(md, asset_class_for(md.dataset))
    return smap, recs[1:]


def _px(v: int) -> int | None:
    return None if v == UNDEF_PRICE else v


class DatabentoParser:
    source = "databento"

    def new_state(self, metadata: Any = None) -> DatabentoState:
        contiguous = bool(metadata.get("contiguous_sequence")) if isinstance(metadata, dict) else False
        return DatabentoState(contiguous_sequence=contiguous)

    def parse(self, payload: bytes, env: Envelope, state: DatabentoState) -> ParseOutput:
        smap, recs = _decode(payload, state)
        out = ParseOutput()
        trade_cls = dbn.TradeMsg
        for i, r in enumerate(recs):
            try:
                if type(r) is trade_cls:  # most of a trades file: the short path
                    self._trade(i, r, smap, env, state, out)
                else:
                    self._record(i, r, smap, env, state, out)
            except (SymbolError, ValueError, KeyError, AttributeError, TypeError, dbn.DBNError) as exc:
                raise ParseError(f"record {i} ({type(r).__name__}): {exc}") from None
        out.control = not out.records and not out.gaps
        return out

    def _symbol(self, r: Any, smap: SymbolMap, state: DatabentoState) -> str:
        iid = r.instrument_id
        raw = (
            smap.on_day(iid, r.ts_event // NS_PER_DAY) or smap.any_day.get(iid) or state.definitions.get(iid)
        )
        if raw is None:
            day = _EPOCH + dt.timedelta(days=r.ts_event // NS_PER_DAY)
            raise ParseError(f"instrument_id {iid} has no symbol mapping on {day}")
        return raw

    def _canonical(self, raw: str, asset: AssetClass) -> str:
        return parse_option(raw).symbol if asset == "option" else raw.strip()

    def _trade(
        self, i: int, r: Any, smap: SymbolMap, env: Envelope, state: DatabentoState, out: ParseOutput
    ) -> None:
        """``_record`` for a TradeMsg: the same steps in the same order, each DBN field read once
        (every attribute read converts a Rust field to a Python object) and no ``common`` dict."""
        iid, ts_event = r.instrument_id, r.ts_event
        raw = smap.on_day(iid, ts_event // NS_PER_DAY) or smap.any_day.get(iid) or state.definitions.get(iid)
        if raw is None:
            raw = self._symbol(r, smap, state)  # raises with the day in the message
        asset = smap.asset_class
        symbol = _CANON[raw] if asset != "option" else self._canonical(raw, asset)
        ts_recv = r.ts_recv
        self._seq(r.sequence, iid, ts_recv, symbol, env, state, out)
        side, rule = _SIDE_ENUM.get(r.side, ("unknown", "none"))
        price = r.price
        if price == UNDEF_PRICE:
            raise ParseError("trade with undefined price")
        trade = Trade(
            symbol=symbol,
            asset_class=asset,
            source=self.source,
            venue=smap.dataset,
            stream=env.stream,
            session=env.session,
            seq=env.seq,
            sub_seq=i,
            ts_event=ts_event,
            ts_recv=ts_recv,
            price=price,
            size=r.size * 10**9,
            side=side,  # type: ignore[arg-type]
            side_rule=rule,  # type: ignore[arg-type]
        )
        out.records.append(trade)

    def _record(
        self, i: int, r: Any, smap: SymbolMap, env: Envelope, state: DatabentoState, out: ParseOutput
    ) -> None:
        is_def = isinstance(r, (dbn.InstrumentDefMsg, dbn.InstrumentDefMsgV1, dbn.InstrumentDefMsgV2))
        if not is_def and not isinstance(r, (dbn.TradeMsg, dbn.MBP1Msg, dbn.MBP10Msg, dbn.OHLCVMsg)):
            state.skipped[type(r).__name__] += 1
            return
        asset = smap.asset_class
        raw = r.raw_symbol if is_def else self._symbol(r, smap, state)
        symbol = self._canonical(raw, asset)
        ts_recv = getattr(r, "ts_recv", None)
        common: dict[str, Any] = {
            "symbol": symbol,
            "asset_class": asset,
            "source": self.source,
            "venue": smap.dataset,
            "stream": env.stream,
            "session": env.session,
            "seq": env.seq,
            # Index of the DBN record in the raw message. One MBP-1 trade print yields a Trade and a
            # Quote with the same sub_seq: downstream identity is (source, stream, session, seq, sub_seq,
            # record type).
            "sub_seq": i,
            "ts_event": r.ts_event,
            "ts_recv": ts_recv,
        }
        recs: list[Record] = out.records
        if is_def:
            state.definitions[r.instrument_id] = raw
            recs.append(self._instrument(r, raw, asset, common))
            return
        if isinstance(r, dbn.OHLCVMsg):
            tf, length = _OHLCV.get(int(r.rtype.value)) or _SCHEMA_TF[smap.schema]
            common["ts_recv"] = r.ts_event + length
            recs.append(
                Bar(
                    **common,
                    timeframe=tf,
                    open=r.open,
                    high=r.high,
                    low=r.low,
                    close=r.close,
                    volume=r.volume * 10**9,
                )
            )
            return
        self._sequence(r, symbol, env, state, out)
        if r.action == "T" or isinstance(r, dbn.TradeMsg):
            side, rule = _SIDE.get(str(r.side), ("unknown", "none"))
            if r.price == UNDEF_PRICE:
                raise ParseError("trade with undefined price")
            recs.append(Trade(**common, price=r.price, size=r.size * 10**9, side=side, side_rule=rule))  # type: ignore[arg-type]
        if isinstance(r, dbn.MBP1Msg):
            lv = r.levels[0]
            bid_ok, ask_ok = lv.bid_px != UNDEF_PRICE, lv.ask_px != UNDEF_PRICE
            recs.append(
                Quote(
                    **common,
                    bid_price=lv.bid_px if bid_ok else 0,
                    bid_size=lv.bid_sz * 10**9 if bid_ok else 0,
                    ask_price=lv.ask_px if ask_ok else 0,
                    ask_size=lv.ask_sz * 10**9 if ask_ok else 0,
                )
            )
        elif isinstance(r, dbn.MBP10Msg):
            bids = tuple(
                Level(lv.bid_px, lv.bid_sz * 10**9, lv.bid_ct) for lv in r.levels if lv.bid_px != UNDEF_PRICE
            )
            asks = tuple(
                Level(lv.ask_px, lv.ask_sz * 10**9, lv.ask_ct) for lv in r.levels if lv.ask_px != UNDEF_PRICE
            )
            recs.append(BookUpdate(**common, bids=bids, asks=asks, snapshot=True, depth=10))

    def _sequence(self, r: Any, symbol: str, env: Envelope, state: DatabentoState, out: ParseOutput) -> None:
        self._seq(r.sequence, r.instrument_id, r.ts_recv, symbol, env, state, out)

    def _seq(
        self,
        seq: int,
        iid: int,
        ts_recv: int,
        symbol: str,
        env: Envelope,
        state: DatabentoState,
        out: ParseOutput,
    ) -> None:
        last = state.last_seq.get(iid)
        state.last_seq[iid] = seq if last is None else max(seq, last)
        if last is None:
            return
        if seq < last:
            state.seq_regressions += 1
        elif seq > last + 1 and state.contiguous_sequence:
            detail = f"instrument_id {iid}: {seq - last - 1} sequence numbers missing"
            out.gaps.append(
                seq_gap(
                    env,
                    symbol,
                    before=last,
                    after=seq,
                    ts_start=ts_recv,
                    ts_end=ts_recv,
                    detail=detail,
                    source=self.source,
                )
            )

    def _instrument(self, r: Any, raw: str, asset: AssetClass, common: dict[str, Any]) -> Instrument:
        opt = parse_option(raw) if asset == "option" else None
        cls = str(r.instrument_class)
        right: OptionRight | None = "C" if cls == "C" else "P" if cls == "P" else None
        expiry = None if r.expiration == UNDEF_TS else _EPOCH + dt.timedelta(days=r.expiration // NS_PER_DAY)
        mult = getattr(r, "contract_multiplier", UNDEF_I32)
        return Instrument(
            **common,
            instrument_id=r.instrument_id,
            raw_symbol=raw,
            underlying=(opt.underlying if opt else None) or (r.underlying or r.asset or None),
            expiry=expiry,
            right=right,
            strike=_px(r.strike_price),
            tick_size=_px(r.min_price_increment),
            multiplier=None if mult in (UNDEF_I32, None) else mult * 10**9,
            currency=r.currency or None,
        )


PARSER = DatabentoParser()
