"""`tickwire simulate --sent-log`: at stop, the file holds exactly the frames and REST answers served."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.helpers import wait_for
from tests.integration.cluster_pipeline import load_sent_log, settled, sim_control, sim_frames

pytestmark = pytest.mark.integration


def test_sent_log_holds_exactly_what_the_client_received(tmp_path: Path) -> None:
    log, out = tmp_path / "sent.jsonl", tmp_path / "sim.out"
    cmd = [
        sys.executable,
        "-m",
        "tickwire.cli",
        "simulate",
        "binance",
        "--rate",
        "200",
        "--sent-log",
        str(log),
    ]
    with out.open("wb") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    try:
        found = wait_for(lambda: re.search(r"listening (ws://\S+)", out.read_text()), 30, what="listening")
        url = found.group(1)
        http = "http" + url.removeprefix("ws")
        with urllib.request.urlopen(f"{http}/api/v3/depth?symbol=BTCUSDT&limit=5", timeout=10) as resp:
            depth = resp.read()
        got: list[bytes] = []
        with connect(url + "/stream") as ws:
            ws.send('{"method":"SUBSCRIBE","params":["btcusdt@aggTrade","ethusdt@bookTicker"],"id":1}')
            while len(got) < 50:
                got.append(_bytes(ws.recv(timeout=10)))
            # Mute, so nothing is sent after the client stops reading; then read what is still in flight.
            assert sim_control(http, "/control/fault?fault=mute&seconds=60")["ok"]
            n = settled(lambda: sim_frames(http), quiet=0.5)
            while len(got) < n:
                got.append(_bytes(ws.recv(timeout=10)))
            with pytest.raises(TimeoutError):
                ws.recv(timeout=0.5)
    except ConnectionClosed as exc:
        raise AssertionError(f"simulator closed the connection: {exc}") from None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
    assert proc.returncode == 0
    sent = load_sent_log(log)
    assert sent.ws == {1: got}
    assert got[0] == b'{"result":null,"id":1}'
    assert sent.rest == [depth]


def _bytes(frame: str | bytes) -> bytes:
    return frame.encode() if isinstance(frame, str) else frame
