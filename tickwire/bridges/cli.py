"""``tickwire bridge redis|nats``: run a bridge as a faust worker (app ids tickwire-bridge-redis / -nats).

Settings come from the environment (``REDIS_BRIDGE_*`` / ``NATS_BRIDGE_*`` plus ``KAFKA_BOOTSTRAP_SERVERS``,
``REDIS_URL``, ``NATS_URL``); the options below override them. Scale out by running more processes with
the same app id: Kafka spreads the partitions over them (each agent has concurrency 1).
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from tickwire import logs
from tickwire.logs import kv

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tickwire bridge", description="Run a bridge.")
    sub = p.add_subparsers(dest="target", required=True)
    for name in ("redis", "nats"):
        sp = sub.add_parser(name, help=f"canonical topics -> {name}")
        sp.add_argument("--bootstrap", dest="kafka_bootstrap_servers", help="Kafka bootstrap servers")
        sp.add_argument("--registry-url", help="Schema Registry URL (default: local schema ids)")
        sp.add_argument("--topics", help="comma-separated canonical topics (default: all data topics)")
        sp.add_argument("--topic-prefix", help="prefix for consumed topics, DLQ topic and app id (tests)")
        sp.add_argument("--app-id", help="faust app id / consumer group (before the topic prefix)")
        sp.add_argument("--batch-max", type=int, help="records per batch at most")
        sp.add_argument("--batch-within-ms", type=float, help="wait at most this long to fill a batch")
        sp.add_argument("--commit-interval-s", type=float, help="offset commit period (s) of written batches")
        sp.add_argument("--metrics-port", type=int, help="Prometheus port (0 = off)")
        sp.add_argument("--data-dir", help="faust data directory")
        sp.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
        if name == "redis":
            sp.add_argument("--redis-url", help="redis://host:port/db")
            sp.add_argument("--key-prefix", help="prefix for every Redis key and channel (tests)")
            sp.add_argument("--stale-after-s", type=float, help="staleness threshold (s)")
            sp.add_argument("--monitor-interval-s", type=float, help="heartbeat / staleness period")
            sp.add_argument(
                "--no-control-plane",
                dest="control_plane",
                action="store_const",
                const=False,
                help="do not run the legacy subscription control plane",
            )
        else:
            sp.add_argument("--nats-url", help="nats://host:port")
            sp.add_argument("--stream", help="JetStream stream name (default MARKET_DATA)")
            sp.add_argument("--subject-prefix", help="prefix for subjects, e.g. 't1.' (tests)")
            sp.add_argument("--duplicate-window-s", type=float, help="JetStream dedupe window")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {k: v for k, v in vars(args).items() if k != "target" and v is not None}
    if "topics" in out:
        out["topics"] = tuple(t.strip() for t in out["topics"].split(",") if t.strip())
    return out


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    from prometheus_client import start_http_server

    from tickwire.bridges.config import NatsBridgeSettings, RedisBridgeSettings
    from tickwire.bridges.runtime import run_worker

    overrides = _overrides(args)
    if args.target == "redis":
        from tickwire.bridges import redis_bridge

        rs = RedisBridgeSettings.load(**overrides)
        logs.setup(rs.log_level)
        app = redis_bridge.build(rs)
        settings: Any = rs
    else:
        from tickwire.bridges import nats_bridge

        ns = NatsBridgeSettings.load(**overrides)
        logs.setup(ns.log_level)
        app = nats_bridge.build(ns)
        settings = ns
    if settings.metrics_port:
        start_http_server(settings.metrics_port)
    log.info(
        "bridge starting %s",
        kv(target=args.target, app_id=settings.full_app_id, topics=",".join(settings.full_topics)),
    )
    return run_worker(app, settings.log_level)
