"""`tickwire simulate` as a process: prints its URL, serves the vendor protocol, stops on SIGTERM."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import pytest
from websockets.sync.client import connect

pytestmark = pytest.mark.integration


def test_simulate_coinbase_process_serves_and_stops() -> None:
    cmd = [
        sys.executable,
        "-m",
        "tickwire.cli",
        "simulate",
        "coinbase",
        "--rate",
        "100",
        "--symbols",
        "SOL-USD",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening ws://127.0.0.1:")
        url = line.split()[1]
        with connect(url) as ws:
            ws.send(json.dumps({"type": "subscribe", "product_ids": ["SOL-USD"], "channels": ["matches"]}))
            assert json.loads(ws.recv(timeout=5))["type"] == "subscriptions"
            m = json.loads(ws.recv(timeout=5))
            assert m["type"] in ("match", "last_match") and m["product_id"] == "SOL-USD"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
    assert proc.returncode == 0
