"""The normalizer's table-backed state store: writes reach the changelog once per flush, per partition."""

from __future__ import annotations

from typing import Any

import msgspec

from tickwire.normalize.app import _TableStore


class _Mem:
    def __init__(self) -> None:
        self.data: dict[str, Any] = {}


class _Table:
    """Just what _TableStore reads: a faust table's memory store (``table.data.data``)."""

    def __init__(self) -> None:
        self.data = _Mem()


def test_last_write_per_key_becomes_one_changelog_record_of_its_partition() -> None:
    st = _TableStore(_Table(), "x.binance.raw", "app-state-binance-changelog")
    st["o|x.binance.raw|0"] = b"5"
    st["o|x.binance.raw|0"] = b"6"
    st["d|x.binance.raw|2|binance|s|1"] = b"[7,8]"
    st["b|x.binance.raw|2|binance|BTC"] = b"{}"
    del st["b|x.binance.raw|2|binance|BTC"]
    assert st.get("o|x.binance.raw|0") == b"6" and "b|x.binance.raw|2|binance|BTC" not in st
    out = st.take_dirty()
    enc = msgspec.json.encode
    assert out == {
        0: [(enc("o|x.binance.raw|0"), enc("6"))],
        2: [
            (enc("b|x.binance.raw|2|binance|BTC"), None),
            (enc("d|x.binance.raw|2|binance|s|1"), enc("[7,8]")),
        ],
    }
    assert st.take_dirty() == {}  # nothing written since


def test_changelog_records_decode_to_the_table_values_faust_recovers() -> None:
    # faust recovers the table with its json serializer: key and value must come back as the same str.
    st = _TableStore(_Table(), "t.raw", "cl")
    st["w|t.raw|1|binance"] = b"[1700000000000000000,null]"
    ((k, v),) = st.take_dirty()[1]
    assert msgspec.json.decode(k) == "w|t.raw|1|binance"
    assert v is not None and msgspec.json.decode(v) == "[1700000000000000000,null]"


def test_dropped_partition_sends_nothing() -> None:
    st = _TableStore(_Table(), "t.raw", "cl")
    st["o|t.raw|0"] = b"1"
    st["o|t.raw|1"] = b"2"
    st.drop_dirty(0)
    assert list(st.take_dirty()) == [1]
