"""`tickwire parse`: input detection, envelopes, JSON output, rejects and exit status."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from tickwire.normalize.parse_cli import build_argparser, rest_stream, run

FIX = Path(__file__).resolve().parents[1] / "fixtures" / "alpaca"
DBN = Path("/work/shared/data/dbn/test_data.mbp-1.v3.dbn.zst")


def cli(
    argv: list[str], stdin: bytes | None = None, monkeypatch: pytest.MonkeyPatch | None = None
) -> tuple[int, list[Any], list[Any]]:
    args = build_argparser().parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    if stdin is not None:
        assert monkeypatch is not None

        class _Stdin:
            buffer = io.BytesIO(stdin)

        monkeypatch.setattr("sys.stdin", _Stdin())
    rc = run(args, out, err)
    return (
        rc,
        [json.loads(x) for x in out.getvalue().splitlines()],
        [json.loads(x) if x.startswith("{") else x for x in err.getvalue().splitlines()],
    )


def test_recorded_session() -> None:
    rc, docs, errs = cli(["--source", "alpaca", str(FIX / "stocks-iex.session.txt")])
    assert (rc, errs) == (0, [])
    first = docs[0]
    assert (first["topic"], first["key"], first["schema"]) == ("stock_trades_realtime", "AAPL", "Trade")
    v = first["value"]
    assert (v["price"], v["size"], v["ts_event"], v["stream"], v["seq"]) == (
        "182.63",
        "100",
        1_708_963_200_004_521_984,
        "stocks.iex",
        4,
    )
    assert v["ts_recv"] == 1_708_963_200_011_480_000  # exact from the text "1708963200.011480"
    assert [d["schema"] for d in docs].count("Bar") == 3


def test_payload_per_line_with_reject(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = (
        b'[{"T":"t","S":"BTC/USD","p":1.5,"s":2,"t":"2024-03-12T10:27:48Z","i":1,"tks":"B"}]\n'
        b"garbage\n"
        b'[{"T":"success","msg":"authenticated"}]\n'
    )
    rc, docs, errs = cli(["--source", "alpaca", "--stream", "crypto.us", "-"], lines, monkeypatch)
    assert rc == 1
    assert [(d["topic"], d["value"]["price"], d["value"]["side"]) for d in docs] == [
        ("crypto_trades_realtime", "1.5", "buy")
    ]
    assert errs[0]["line"] == 2 and errs[0]["class"] == "ParseError"


def test_msgpack_frames() -> None:
    rc, docs, _ = cli(
        [
            "--source",
            "alpaca",
            "--stream",
            "options.opra",
            "--content-type",
            "msgpack",
            str(FIX / "options-opra.msgpack"),
        ]
    )
    assert rc == 0
    assert docs[0]["value"]["strike"] == "676" and docs[0]["value"]["expiry"] == "2025-12-16"


@pytest.mark.skipif(not DBN.exists(), reason="no shared DBN file")
def test_dbn_file_chunks() -> None:
    rc, docs, _ = cli(["--source", "databento", "--batch", "1", str(DBN)])
    assert rc == 0
    assert [d["value"]["seq"] for d in docs] == [1, 2]
    assert docs[0]["topic"] == "future_quotes_realtime"
    assert docs[0]["value"]["bid_price"] == "3720.25"


def test_unknown_vendor() -> None:
    rc, _, errs = cli(["--source", "nope", str(FIX / "stocks-iex.session.txt")])
    assert rc == 2
    assert "unknown vendor 'nope'" in errs[0]


def test_rest_stream_names() -> None:
    assert rest_stream("https://api.binance.com/api/v3/exchangeInfo") == "rest.exchangeInfo"
    assert rest_stream("https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000") == (
        "rest.depth?symbol=BTCUSDT&limit=1000"
    )
    assert rest_stream("https://api.pro.coinbase.com/products") == "rest.products"
