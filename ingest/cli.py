"""`tickwire ingest <vendor>`: run one vendor producer (vendor payloads -> ``<vendor>.raw``).

Settings come from the vendor's env prefix (``ALPACA_``, ``BINANCE_``, ``COINBASE_``) plus
``KAFKA_BOOTSTRAP_SERVERS``; command-line options override them. Exit codes: 0 stopped by signal,
2 fatal configuration or authentication error.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ingest import health
from ingest.config import AlpacaSettings, BinanceSettings, CoinbaseSettings, IngestSettings, is_local_url
from ingest.control import CONTROL_TOPIC, ControlFollower, ControlReader, control_key, stored_subs
from ingest.producer import RawProducer
from ingest.runner import Runner, Subs, VendorAdapter
from ingest.vendors import alpaca, binance, coinbase
from tickwire import logs
from tickwire.logs import kv
from tickwire.settings import UnknownSettingError

log = logging.getLogger(__name__)

VENDORS = ("alpaca", "binance", "coinbase")
_SIM_CREDENTIAL = "simulator"


class ConfigError(Exception):
    pass


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tickwire ingest",
        description="Run a vendor producer: every WebSocket frame goes untouched to <vendor>.raw.",
    )
    p.add_argument("vendor", choices=VENDORS)
    p.add_argument("--url", help="WebSocket URL (e.g. a simulator's ws://127.0.0.1:PORT/...)")
    p.add_argument("--rest-url", help="REST base URL for side fetches (binance, coinbase)")
    p.add_argument("--feed", choices=("stocks", "crypto"), default="stocks", help="alpaca: stocks or crypto")
    p.add_argument("--msgpack", action="store_true", default=None, help="alpaca: MessagePack frames")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS)")
    p.add_argument("--topic-prefix", help="prefix for every topic name (tests)")
    p.add_argument("--metrics-port", type=int, help="Prometheus /metrics port, 0 = off")
    p.add_argument("--stale-after", type=float, help="seconds without data before reconnecting")
    p.add_argument("--backoff-initial", type=float, help="first reconnect backoff cap, seconds")
    p.add_argument("--backoff-max", type=float, help="largest reconnect backoff cap, seconds")
    p.add_argument("--no-control", action="store_true", help="ignore the control.subscriptions topic")
    return p


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    table = {
        "bootstrap": "kafka_bootstrap_servers",
        "topic_prefix": "topic_prefix",
        "metrics_port": "metrics_port",
        "stale_after": "stale_after_s",
        "backoff_initial": "backoff_initial_s",
        "backoff_max": "backoff_max_s",
        "msgpack": "msgpack",
    }
    out = {field: getattr(args, a) for a, field in table.items() if getattr(args, a) is not None}
    if args.no_control:
        out["subscriptions_live"] = False
    return out


def build(args: argparse.Namespace) -> tuple[IngestSettings, VendorAdapter, Subs]:
    ov = _overrides(args)
    if args.vendor != "alpaca":
        ov.pop("msgpack", None)
    if args.vendor == "alpaca":
        a = AlpacaSettings.load(**ov)
        url = args.url or (a.crypto_url if args.feed == "crypto" else alpaca._stock_url(a))
        if a.api_key is None or a.secret_key is None:
            if not is_local_url(url):
                raise ConfigError(
                    "Alpaca credentials missing: set ALPACA_API_KEY and ALPACA_SECRET_KEY "
                    "(only a simulator URL on localhost runs without them)"
                )
            a = AlpacaSettings.load(**ov, api_key=_SIM_CREDENTIAL, secret_key=_SIM_CREDENTIAL)
        return a, alpaca.AlpacaAdapter(a, feed=args.feed, url=url), alpaca.default_subs(a, args.feed)
    if args.vendor == "binance":
        b = BinanceSettings.load(**ov)
        return b, binance.BinanceAdapter(b, url=args.url, rest_url=args.rest_url), binance.default_subs(b)
    c = CoinbaseSettings.load(**ov)
    return c, coinbase.CoinbaseAdapter(c, url=args.url, rest_url=args.rest_url), coinbase.default_subs(c)


def run(
    settings: IngestSettings,
    adapter: VendorAdapter,
    subs: Subs,
    *,
    on_runner: Callable[[Runner], None] | None = None,
    install_signals: bool = True,
) -> int:
    """Wire producer, control follower, heartbeat and metrics around one Runner; blocks until it ends."""
    from normalize.avro import Codec

    codec = Codec(settings.schema_registry_url)
    producer = RawProducer(
        settings.kafka_bootstrap_servers,
        client_id=f"tickwire-ingest-{adapter.source}-{adapter.stream}",
        linger_ms=settings.linger_ms,
        compression=settings.compression,
        queue_max_kbytes=settings.queue_max_kbytes,
        max_full_retries=settings.max_full_retries,
    )
    reader: ControlReader | None = None
    if settings.subscriptions_live:
        reader = ControlReader(settings.kafka_bootstrap_servers, settings.topic(CONTROL_TOPIC), codec)
        stored = stored_subs(reader.read_to_end(), adapter.control_vendor)
        if stored:
            log.info(
                "subscriptions from control topic override defaults %s", kv(types=",".join(sorted(stored)))
            )
        subs = {**subs, **stored}
        _seed_defaults(producer, codec, settings.topic(CONTROL_TOPIC), adapter, subs, stored)
    runner = Runner(adapter, producer, settings, subs=subs, encode=codec.encode)
    follower = ControlFollower(reader, adapter.control_vendor, runner.set_desired) if reader else None

    def stats() -> dict[str, str]:
        return {
            "stream": adapter.stream,
            "connections": str(runner.connections),
            "reconnects": str(runner.reconnects),
            "queue_depth": str(producer.queue_depth()),
            "received": str(int(health.counter_total(health.MESSAGES_RECEIVED, source=adapter.source))),
            "broker_up": str(producer.broker_up),
        }

    hb = health.HeartbeatEmitter(
        producer,
        component=f"ingest.{adapter.source}",
        topic=settings.topic("tickwire.health"),
        interval=settings.heartbeat_interval_s,
        stats=stats,
        status=lambda: "ok" if producer.broker_up and producer.fatal_error is None else "degraded",
        encode=codec.encode,
    )
    health.serve_metrics(settings.metrics_port)
    if install_signals:
        producer.install_signal_flush(on_signal=runner.stop)
    if follower is not None:
        follower.start()
    hb.start()
    if on_runner is not None:
        on_runner(runner)
    try:
        rc = runner.run()
    finally:
        hb.stop()
        if follower is not None:
            follower.stop()
        producer.flush(30)
    return rc


def _seed_defaults(
    producer: RawProducer, codec: Any, topic: str, adapter: VendorAdapter, subs: Subs, stored: Subs
) -> None:
    """Write config defaults for stream types the control topic does not know yet, so that
    `tickwire subscriptions add` edits the set the producer actually uses rather than an empty one."""
    from normalize.avro import Subscription

    for stream_type, symbols in sorted(subs.items()):
        if stream_type in stored:
            continue
        sub = Subscription(
            vendor=adapter.control_vendor,
            stream_type=stream_type,
            symbols=tuple(sorted(symbols)),
            updated_ts=time.time_ns(),
            updated_by=f"ingest.{adapter.source} defaults",
        )
        key = control_key(adapter.control_vendor, stream_type)
        producer.produce(topic, codec.encode(sub), key.encode(), [], stream="control")
    producer.flush(10)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logs.setup()
    try:
        settings, adapter, subs = build(args)
    except (ConfigError, UnknownSettingError, ValidationError) as exc:
        print(f"tickwire ingest {args.vendor}: {exc}", file=sys.stderr)
        return 2
    log.info("starting %s", kv(source=adapter.source, stream=adapter.stream, url=adapter.url(subs)))
    rc = run(settings, adapter, subs)
    if rc != 0:
        print(f"tickwire ingest {args.vendor}: stopped on a fatal vendor error (see log)", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
