"""`tickwire ingest <vendor>`: run one vendor producer (vendor payloads -> ``<vendor>.raw``).

Settings come from the vendor's env prefix (``ALPACA_``, ``BINANCE_``, ``COINBASE_``) plus
``KAFKA_BOOTSTRAP_SERVERS``; command-line options override them. Exit codes: 0 stopped by signal,
2 fatal configuration or authentication error, 4 (``producer.EXIT_FATAL``) a fatal producer error
(restart the process; the new session reports the possible loss as a Gap, see ``ingest.sessions``).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from tickwire import logs, vendors
from tickwire.contract.adapter import ConfigError, Subs, VendorAdapter
from tickwire.contract.control import CONTROL_TOPIC, ControlFollower, ControlReader, control_key, stored_subs
from tickwire.contract.settings import IngestSettings
from tickwire.ingest import health
from tickwire.ingest.producer import EXIT_FATAL, RawProducer
from tickwire.ingest.runner import Runner
from tickwire.ingest.sessions import SESSIONS_TOPIC, SessionMarker
from tickwire.logs import kv
from tickwire.settings import UnknownSettingError

log = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tickwire ingest",
        description="Run a vendor producer: every vendor frame goes untouched to <vendor>.raw.",
    )
    sub = p.add_subparsers(dest="vendor", required=True, metavar="VENDOR")
    for spec in vendors.with_("ingest"):
        vp = sub.add_parser(spec.name, help=spec.summary, description=spec.summary)
        vp.add_argument("--url", help="vendor URL (e.g. a simulator's ws://127.0.0.1:PORT/...)")
        vp.add_argument("--bootstrap", help="Kafka bootstrap servers (default $KAFKA_BOOTSTRAP_SERVERS)")
        vp.add_argument("--topic-prefix", help="prefix for every topic name (tests)")
        vp.add_argument("--metrics-port", type=int, help="Prometheus /metrics port, 0 = off")
        vp.add_argument("--stale-after", type=float, help="seconds without data before reconnecting")
        vp.add_argument("--backoff-initial", type=float, help="first reconnect backoff cap, seconds")
        vp.add_argument("--backoff-max", type=float, help="largest reconnect backoff cap, seconds")
        vp.add_argument("--no-control", action="store_true", help="ignore the control.subscriptions topic")
        vendors.load(spec.ingest or "").add_arguments(vp)
    return p


_OVERRIDES = {
    "bootstrap": "kafka_bootstrap_servers",
    "topic_prefix": "topic_prefix",
    "metrics_port": "metrics_port",
    "stale_after": "stale_after_s",
    "backoff_initial": "backoff_initial_s",
    "backoff_max": "backoff_max_s",
}


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out = {f: getattr(args, a) for a, f in _OVERRIDES.items() if getattr(args, a, None) is not None}
    if args.no_control:
        out["subscriptions_live"] = False
    return out


def build(args: argparse.Namespace) -> tuple[IngestSettings, VendorAdapter, Subs]:
    """The vendor's settings, adapter and default subscriptions (its ``build`` in the registry row)."""
    module = vendors.load(vendors.spec(args.vendor).ingest or "")
    built: tuple[IngestSettings, VendorAdapter, Subs] = module.build(args, _overrides(args))
    return built


def run(
    settings: IngestSettings,
    adapter: VendorAdapter,
    subs: Subs,
    *,
    on_runner: Callable[[Runner], None] | None = None,
    install_signals: bool = True,
) -> int:
    """Wire producer, control follower, heartbeat and metrics around one Runner; blocks until it ends."""
    from tickwire.contract.codec import Codec

    codec = Codec(settings.schema_registry_url)
    producer = RawProducer.for_settings(settings, f"tickwire-ingest-{adapter.source}-{adapter.stream}")
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
            "connected": "1" if runner.ready.is_set() else "0",  # vendor link up and subscribed
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
    ready_checks(runner, producer)
    health.serve_metrics(settings.metrics_port)
    marker = session_marker(settings, adapter, runner, producer, codec)
    clean = False
    if install_signals:
        producer.install_signal_flush(on_signal=runner.stop)
    if follower is not None:
        follower.start()
    hb.start()
    if on_runner is not None:
        on_runner(runner)
    try:
        rc = runner.run()
        clean = rc == 0
    except SystemExit as exc:  # the signal handler's exit after its flush
        clean = exc.code in (0, None)
        raise
    finally:
        hb.stop()
        if follower is not None:
            follower.stop()
        if clean and vendors.spec(adapter.source).bar_rollup:
            runner.out.end_session(adapter.stream)  # the normalizer closes the open minute of vendor bars
        # A clean stop (nothing left queued) is marked as such; otherwise the next session emits a Gap.
        if producer.flush(30) == 0 and clean and producer.fatal_error is None:
            marker.stop(runner.seq(adapter.stream))
    return rc


def ready_checks(runner: Runner, producer: RawProducer) -> None:
    """/healthz and /readyz of a producer process (``tickwire.runtime.httpd``)."""
    from tickwire.runtime.httpd import HEALTH

    def fatal() -> str | None:
        err = producer.fatal_error
        return None if err is None else f"fatal producer error {err.name()}: the process is ending"

    HEALTH.liveness("producer", fatal)
    HEALTH.readiness("vendor", lambda: None if runner.ready.is_set() else "vendor not subscribed")
    HEALTH.readiness(
        "broker", lambda: None if producer.broker_up else "broker unreachable: buffering locally"
    )


def session_marker(
    settings: IngestSettings, adapter: VendorAdapter, runner: Runner, producer: RawProducer, codec: Any
) -> SessionMarker:
    """Start this session's clean-stop protocol: a Gap on tickwire.gaps if the previous one crashed."""

    def gap(last_seq: int | None, ts_start: int, detail: str) -> None:
        runner.out.gap(adapter.stream, last_seq, None, ts_start, time.time_ns(), detail, reason="dropped")

    marker = SessionMarker(
        producer, settings.kafka_bootstrap_servers, topic=settings.topic(SESSIONS_TOPIC),
        raw_topic=runner.raw_topic, source=adapter.source, stream=adapter.stream, session=runner.session,
        encode=codec.encode, decode=codec.decode,
    )  # fmt: skip
    marker.start(gap)
    return marker


def _seed_defaults(
    producer: RawProducer, codec: Any, topic: str, adapter: VendorAdapter, subs: Subs, stored: Subs
) -> None:
    """Write config defaults for stream types the control topic does not know yet, so that
    `tickwire subscriptions add` edits the set the producer actually uses rather than an empty one."""
    from tickwire.contract.codec import Subscription

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
    module = vendors.load(vendors.spec(args.vendor).ingest or "")
    if hasattr(module, "build_rest"):  # a polled REST vendor: the REST poller instead of the runner
        from tickwire.ingest import rest_run

        return rest_run.main(module, args, _overrides(args))
    try:
        settings, adapter, subs = build(args)
    except (ConfigError, UnknownSettingError, ValidationError) as exc:
        print(f"tickwire ingest {args.vendor}: {exc}", file=sys.stderr)
        return 2
    log.info("starting %s", kv(source=adapter.source, stream=adapter.stream, url=adapter.url(subs)))
    # Optional vendor hook ``on_runner(runner)``: start vendor-side helpers beside the runner.
    hook = getattr(vendors.load(vendors.spec(args.vendor).ingest or ""), "on_runner", None)
    rc = run(settings, adapter, subs, on_runner=hook)
    if rc == EXIT_FATAL:
        print(f"tickwire ingest {args.vendor}: stopped on a fatal producer error (see log)", file=sys.stderr)
    elif rc != 0:
        print(f"tickwire ingest {args.vendor}: stopped on a fatal vendor error (see log)", file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
