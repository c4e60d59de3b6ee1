"""FIX producer pieces without a peer: settings, registry build, raw keys, Y -> VendorWarning, V frames."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tickwire import vendors
from tickwire.contract.adapter import VendorWarning
from tickwire.settings import UnknownSettingError
from tickwire.vendors.fix.adapter import FixAdapter, add_arguments, build
from tickwire.vendors.fix.codec import decode, encode
from tickwire.vendors.fix.settings import FixSettings

T0 = 1_767_225_600 * 10**9


def lp_msg(msg_type: str, body: list[tuple[int, str]]) -> bytes:
    return encode(msg_type, sender="LP_ALPHA", target="TICKWIRE", seq=9, now_ns=T0, body=body)


def test_registry_row_and_build_from_cli_args(tmp_path: Path) -> None:
    spec = vendors.spec("fix")
    assert (spec.raw_topic, spec.content_type, spec.control_vendors) == ("fix.raw", "fix", ("fix",))
    p = argparse.ArgumentParser()
    p.add_argument("--url")
    add_arguments(p)
    args = p.parse_args(
        ["--session", "lp-beta", "--symbols", "EUR/USD,AUD/USD", "--store-dir", str(tmp_path)]
    )
    s, adapter, subs = build(args, {"metrics_port": 0})
    assert (s.session, s.symbols, s.backoff_initial_s, s.backoff_max_s) == (
        "lp-beta",
        ("EUR/USD", "AUD/USD"),
        5,
        300,
    )
    assert subs == {"lp-beta": frozenset({"EUR/USD", "AUD/USD"})} and adapter.stream == "lp-beta"
    assert adapter.url(subs) == "fix://127.0.0.1:9878" and (tmp_path / "lp-beta.json").exists()


def test_unknown_fix_setting_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIX_SYMBOL", "EUR/USD")  # typo of FIX_SYMBOLS
    with pytest.raises(UnknownSettingError, match="FIX_SYMBOL"):
        FixSettings.load()


def test_password_is_a_secret_and_only_in_the_logon(tmp_path: Path) -> None:
    s = FixSettings.load(password="hunter2", username="tw", store_dir=tmp_path, metrics_port=0)
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())
    a = FixAdapter(s)
    assert "hunter2" not in repr(a.session.cfg)
    logon = decode(a.session.connected(T0).send[0])
    assert (logon.get(553), logon.get(554)) == ("tw", "hunter2")
    assert "hunter2" not in logon.text()


def test_keys_data_and_reject_classification(tmp_path: Path) -> None:
    a = FixAdapter(FixSettings.load(store_dir=tmp_path, metrics_port=0))
    w = lp_msg("W", [(55, "EUR/USD"), (262, "lp-alpha-1"), (268, "0")])
    x = lp_msg("X", [(262, "lp-alpha-2"), (268, "0")])
    y = lp_msg("Y", [(58, "unknown symbol"), (262, "lp-alpha-3"), (281, "0")])
    hb = lp_msg("0", [])
    assert [a.classify(m) for m in (w, x, y, hb)] == ["lp-alpha-1", "lp-alpha-2", "lp-alpha-3", None]
    assert [a.is_data(m) for m in (w, x, y, hb)] == [True, True, False, False]
    assert a.check(w) is None
    with pytest.raises(VendorWarning, match="lp-alpha-3"):
        a.check(y)


def test_subscribe_and_unsubscribe_frames_share_the_mdreqid(tmp_path: Path) -> None:
    a = FixAdapter(FixSettings.load(store_dir=tmp_path, metrics_port=0))
    a.session.connected(T0)
    a.session.on_bytes(lp_msg("A", [(98, "0"), (108, "30")]).replace(b"34=9", b"34=1"), T0)
    assert a.session.stats.get("bad_frames") == 1  # the edit broke the checksum: not a Logon
    ack = encode("A", sender="LP_ALPHA", target="TICKWIRE", seq=1, now_ns=T0, body=[(98, "0"), (108, "30")])
    a.session.on_bytes(ack, T0)
    sub = [
        decode(f if isinstance(f, bytes) else f.encode())
        for f in a.subscribe_frames({"lp-alpha": frozenset({"GBP/USD"})})
    ]
    unsub = [
        decode(f if isinstance(f, bytes) else f.encode())
        for f in a.unsubscribe_frames({"lp-alpha": frozenset({"GBP/USD"})})
    ]
    assert [(m.get(263), m.get(262), m.get_all(55)) for m in sub + unsub] == [
        ("1", "lp-alpha-2", ["GBP/USD"]),
        ("2", "lp-alpha-2", ["GBP/USD"]),
    ]
