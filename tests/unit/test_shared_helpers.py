"""The helpers that now serve places which used to carry their own copies (issue 9): owned pid files,
secret and private files, the fuzz oracle check, the fast decoder's record-class table."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tickwire.contract import fast_decode, records
from tickwire.contract.codec import Subscription
from tickwire.fuzz.engine import Report
from tickwire.fuzz.strategies import _against_oracle
from tickwire.infra.certs import secret_file, write_private
from tickwire.infra.process import owned_pid


def test_owned_pid_is_the_live_process_whose_command_line_matches(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    assert owned_pid(pid_file, lambda argv: True) is None  # no pid file
    pid_file.write_text(f"{os.getpid()}\n")
    mine = [a.decode() for a in Path(f"/proc/{os.getpid()}/cmdline").read_bytes().split(b"\0") if a]
    assert owned_pid(pid_file, lambda argv: argv == mine) == os.getpid()
    assert owned_pid(pid_file, lambda argv: False) is None  # a recycled pid: someone else's process
    pid_file.write_text("not a pid")
    assert owned_pid(pid_file, lambda argv: True) is None


def test_owned_pid_of_a_dead_process_is_none(tmp_path: Path) -> None:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(str(p.pid))
    assert owned_pid(pid_file, lambda argv: True) is None


def test_secret_file_is_made_once_owner_only_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "credentials" / "role.password"
    first = secret_file(path)
    assert len(first) == 32 and int(first, 16) >= 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    assert secret_file(path) == first
    assert secret_file(tmp_path / "credentials" / "other.password") != first


def test_write_private_replaces_content_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "nats.conf"
    write_private(path, b"long old content\n")
    write_private(path, "user: \u00e9\n".encode())
    assert path.read_text() == "user: \u00e9\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _strict_int(text: str) -> int:
    if not text.isdigit():
        raise ValueError(text)
    return int(text)


def test_against_oracle_counts_disagreements_only() -> None:
    rep = Report()
    _against_oracle(rep, "o", "12", _strict_int, ValueError, lambda t: 12)  # agree
    _against_oracle(rep, "o", "x", _strict_int, ValueError, lambda t: None)  # both reject
    assert rep.violations["o"] == 0 and "o" not in rep.examples
    _against_oracle(rep, "o", "7", _strict_int, ValueError, lambda t: None)  # parser accepts, oracle not
    _against_oracle(rep, "o", "y", _strict_int, ValueError, lambda t: 1)  # parser rejects, oracle not
    assert rep.violations["o"] == 2
    assert rep.examples["o"] == b"7"  # the first example is kept


def test_fast_decoder_knows_every_avro_record_class() -> None:
    expected = {
        "Trade": records.Trade,
        "Quote": records.Quote,
        "Bar": records.Bar,
        "BookUpdate": records.BookUpdate,
        "Instrument": records.Instrument,
        "Gap": records.Gap,
        "Heartbeat": records.Heartbeat,
        "Subscription": Subscription,
        "Level": records.Level,
        "OptionChain": records.OptionChain,
        "OptionContract": records.OptionContract,
        "NewsSentiment": records.NewsSentiment,
        "NewsArticle": records.NewsArticle,
        "TickerSentiment": records.TickerSentiment,
        "IndicatorPoint": records.IndicatorPoint,
    }
    assert expected == fast_decode._CLASSES
