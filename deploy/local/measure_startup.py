"""Measure local Kafka start-up times per version (cold with an empty Maven cache, fresh checkout, warm).

Runs a throw-away broker on spare ports with a throw-away .local, so the shared servers are untouched:
    .venv/bin/python deploy/local/measure_startup.py 4.4.0 3.9.2
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from tickwire.infra.config import load_config
from tickwire.infra.servers import Kafka


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def measure(version: str, port: int) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as m2, tempfile.TemporaryDirectory() as local:
        env = dict(os.environ, TICKWIRE_LOCAL_DIR=local)
        cfg = load_config(env, kafka_version=version, kafka_port=port, kafka_controller_port=port + 1)
        k = Kafka(cfg)
        # Cold: empty Maven repository (everything downloaded), empty .local.
        os.environ["MAVEN_OPTS"] = f"-Dmaven.repo.local={m2}"
        t0 = time.monotonic()
        k.up()
        out["cold_s"] = time.monotonic() - t0
        out["rss_mb"] = rss_mb(k.status().pid or 0)
        t0 = time.monotonic()
        k.down()
        out["stop_s"] = time.monotonic() - t0
        # Warm: jars and formatted storage present (the everyday `make infra-up`).
        t0 = time.monotonic()
        k.up()
        out["warm_s"] = time.monotonic() - t0
        k.down()
        # Fresh checkout on a machine whose Maven cache is warm: copy jars from ~/.m2, format, start.
        os.environ["MAVEN_OPTS"] = f"-Dmaven.repo.local={m2}"
        fresh = load_config(
            dict(env, TICKWIRE_LOCAL_DIR=local + "/b"),
            kafka_version=version,
            kafka_port=port,
            kafka_controller_port=port + 1,
        )
        t0 = time.monotonic()
        Kafka(fresh).up()
        out["fresh_checkout_s"] = time.monotonic() - t0
        Kafka(fresh).down()
    return out


if __name__ == "__main__":
    for v in sys.argv[1:] or ["4.4.0", "3.9.2"]:
        r = measure(v, 29192)
        print(v, " ".join(f"{k}={val:.1f}" for k, val in r.items()), flush=True)
