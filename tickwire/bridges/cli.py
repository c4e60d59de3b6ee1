"""``tickwire bridge redis|nats``: run a bridge (consumer groups tickwire-bridge-redis / -nats).

Settings come from the environment (``REDIS_BRIDGE_*`` / ``NATS_BRIDGE_*`` plus the shared
``KAFKA_BOOTSTRAP_SERVERS``, ``SCHEMA_REGISTRY_URL``, ``REDIS_URL``, ``NATS_URL``); the options below
override them. Scale out by running more processes with the same app id: Kafka spreads the partitions.
"""

from __future__ import annotations

import argparse
import gc
import logging
import signal
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
        sp.add_argument(
            "--registry-url", dest="schema_registry_url", help="Schema Registry URL (default: local ids)"
        )
        sp.add_argument("--topics", help="comma-separated canonical topics (default: all data topics)")
        sp.add_argument("--topic-prefix", help="prefix for consumed topics, DLQ topic and app id (tests)")
        sp.add_argument("--app-id", help="consumer group (before the topic prefix)")
        sp.add_argument("--batch-max", type=int, help="records per batch at most")
        sp.add_argument("--commit-interval-s", type=float, help="offset commit period (s) of written batches")
        sp.add_argument("--metrics-port", type=int, help="Prometheus port (0 = off)")
        sp.add_argument("--metrics-host", help="Prometheus bind address (default 127.0.0.1)")
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
    from tickwire.bridges.config import NatsBridgeSettings, RedisBridgeSettings

    overrides = _overrides(args)
    settings: RedisBridgeSettings | NatsBridgeSettings
    if args.target == "redis":
        from tickwire.bridges import redis_bridge

        settings = RedisBridgeSettings.load(**overrides)
        logs.setup(settings.log_level)
        sink = redis_bridge.build(settings)
    else:
        from tickwire.bridges import nats_bridge

        settings = NatsBridgeSettings.load(**overrides)
        logs.setup(settings.log_level)
        sink = nats_bridge.build(settings)
    if settings.metrics_port:
        from tickwire.runtime.httpd import HEALTH, serve

        HEALTH.liveness("loop", sink.heartbeat.check)  # a wedged sink loop: restart (/healthz 503)
        serve(settings.metrics_port, settings.metrics_host)  # /metrics, /healthz, /readyz
    for sig in (signal.SIGTERM, signal.SIGINT):
        # Finish the batch, commit what was written, leave the group.
        signal.signal(sig, lambda _n, _f: sink.stop())
    # Every record allocates a few tracked objects (struct, Item, payloads): with the default thresholds
    # the cyclic collector ran every ~700 allocations, rescanning the long-lived heap.
    gc.freeze()
    gc.set_threshold(50_000, 50, 100)
    log.info(
        "bridge starting %s",
        kv(target=args.target, app_id=settings.full_app_id, topics=",".join(settings.full_topics)),
    )
    return sink.run()
