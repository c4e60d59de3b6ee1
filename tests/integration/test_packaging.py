"""A non-editable install (what the container image does) finds its schemas and topics file.

Builds the wheel, installs it into a fresh directory, and runs it from outside the checkout with the
project venv's third-party packages only (``python -S`` + ``PYTHONPATH``: no editable finder, no
checkout on the path): a canonical record encodes and decodes, and ``tickwire parse`` normalizes a
recorded session to the same output as the checkout does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SESSION = REPO / "tests" / "fixtures" / "binance" / "ws-session.txt"

pytestmark = pytest.mark.integration

PROBE = """
import tickwire, tickwire.resources as r
from tickwire.contract.codec import Codec
from tickwire.contract.records import Trade
assert tickwire.__file__.startswith({root!r}), tickwire.__file__
assert str(r.schema_dir()).startswith({root!r}), r.schema_dir()
t = Trade(symbol="BTC/USDT", asset_class="crypto", source="binance", venue="BINANCE", stream="spot",
          session=1, seq=7, sub_seq=0, ts_event=1_700_000_000_123_456_789, ts_recv=1_700_000_000_200_000_000,
          price=6523_123_456_789, size=1_500_000_000, side="buy", side_rule="vendor", trade_id="42")
c = Codec(None)
assert c.decode(c.encode(t)) == t
print("ok", r.topics_file())
"""


def test_wheel_install_finds_its_data(tmp_path: Path) -> None:
    wheels, target = tmp_path / "wheels", tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels), str(REPO)],
        check=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("tickwire-*.whl")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        timeout=120,
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "TICKWIRE_DATA_DIR", "TICKWIRE_SHARED_DIR")
    }
    env["PYTHONPATH"] = f"{target}{os.pathsep}{sysconfig.get_paths()['purelib']}"
    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()

    def py(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-S", *args], cwd=run_dir, env=env, capture_output=True, text=True, timeout=120
        )

    probe = py("-c", PROBE.format(root=str(target)))
    assert probe.returncode == 0, probe.stderr
    assert (
        probe.stdout.startswith("ok ") and str(target / "tickwire" / "_data" / "topics.yaml") in probe.stdout
    )

    installed = py("-m", "tickwire.cli", "parse", "--source", "binance", str(SESSION))
    assert installed.returncode == 0, installed.stderr
    checkout = subprocess.run(
        [sys.executable, "-m", "tickwire.cli", "parse", "--source", "binance", str(SESSION)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert checkout.returncode == 0, checkout.stderr
    lines = installed.stdout.splitlines()
    assert len(lines) > 10 and lines == checkout.stdout.splitlines()
