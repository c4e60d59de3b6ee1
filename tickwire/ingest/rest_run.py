"""The producer process of a polled REST vendor: one ``RestPoller`` with the Kafka producer, the raw
publisher, heartbeats, metrics and health checks around it (``tickwire ingest <vendor>`` for a vendor
whose ingest module has ``build_rest``)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from tickwire.contract.adapter import ConfigError
from tickwire.contract.rest import RestAdapter, RestIngestSettings
from tickwire.ingest import health
from tickwire.ingest.rest_poller import RestPoller
from tickwire.logs import kv
from tickwire.settings import UnknownSettingError

log = logging.getLogger(__name__)


def run(
    settings: RestIngestSettings,
    adapter: RestAdapter,
    *,
    on_poller: Callable[[RestPoller], None] | None = None,
    install_signals: bool = True,
) -> int:
    """The producer process around one poller: Kafka producer, raw publisher, heartbeat, metrics."""
    from tickwire.contract.codec import Codec
    from tickwire.ingest.producer import EXIT_FATAL, FatalProducerError, RawProducer
    from tickwire.ingest.publisher import RawPublisher

    codec = Codec(settings.schema_registry_url)
    producer = RawProducer.for_settings(settings, f"tickwire-ingest-{adapter.source}-rest")
    out = RawPublisher(producer, settings, adapter.source, adapter.content_type, encode=codec.encode)
    poller = RestPoller(adapter, settings, out.publish)
    health.SCRAPE.track_last(adapter.source, "rest", lambda: poller.last_data_ns)
    hb = health.HeartbeatEmitter(
        producer,
        component=f"ingest.{adapter.source}",
        topic=settings.topic("tickwire.health"),
        interval=settings.heartbeat_interval_s,
        stats=lambda: {**poller.stats(), "queue_depth": str(producer.queue_depth())},
        status=lambda: "degraded" if poller.breakers.suspended() or not producer.broker_up else "ok",
        encode=codec.encode,
    )
    _ready_checks(poller, producer)
    health.serve_metrics(settings.metrics_port)
    if install_signals:
        producer.install_signal_flush(on_signal=poller.stop)
    hb.start()
    if on_poller is not None:
        on_poller(poller)
    rc = 0
    try:
        poller.run(check=producer.check_fatal)
    except FatalProducerError as exc:
        log.critical("fatal producer error, stopping %s", kv(source=adapter.source, error=exc))
        rc = EXIT_FATAL
    finally:
        hb.stop()
        producer.flush(30)
    return rc


def _ready_checks(poller: RestPoller, producer: Any) -> None:
    """/healthz and /readyz of the poller process (``tickwire.runtime.httpd``, as the runner's)."""
    from tickwire.runtime.httpd import HEALTH

    def fatal() -> str | None:
        err = producer.fatal_error
        return None if err is None else f"fatal producer error {err.name()}: the process is ending"

    def feeds() -> str | None:
        down = poller.breakers.suspended()
        return "every feed is suspended" if down and len(down) == len(poller.feeds) else None

    HEALTH.liveness("producer", fatal)
    HEALTH.readiness("feeds", feeds)
    HEALTH.readiness(
        "broker", lambda: None if producer.broker_up else "broker unreachable: buffering locally"
    )


def main(module: Any, args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    """``tickwire ingest <vendor>`` for a polled vendor: its module's ``build_rest(args, overrides)``."""
    try:
        settings, adapter = module.build_rest(args, overrides)
    except (ConfigError, UnknownSettingError, ValidationError) as exc:
        print(f"tickwire ingest {args.vendor}: {exc}", file=sys.stderr)
        return 2
    log.info("starting %s", kv(source=adapter.source, transport="rest", feeds=len(adapter.feeds())))
    return run(settings, adapter)
