"""The producer process of a polled REST vendor: one ``RestPoller`` with the Kafka producer, the raw
publisher, heartbeats, metrics and health checks around it (``tickwire ingest <vendor>`` for a vendor
whose ingest module has ``build_rest``).

Session markers as the WebSocket producers keep them (``tickwire.ingest.sessions``), one per stream of
the adapter's feeds since seqs are per stream: a start after a session that did not stop cleanly
publishes its Gap; only a clean stop (signal, nothing left queued, no fatal producer error) is marked
``stopped``. The end-of-session raw marker follows the live producers' rule too: only for a source whose
registry row has ``bar_rollup`` (the one thing the normalizer does with it); none today.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from tickwire import vendors
from tickwire.contract.adapter import ConfigError
from tickwire.contract.rest import RestAdapter, RestIngestSettings
from tickwire.ingest import health
from tickwire.ingest.publisher import RawPublisher
from tickwire.ingest.rest_poller import RestPoller
from tickwire.ingest.sessions import SESSIONS_TOPIC, SessionMarker
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
    markers = session_markers(settings, adapter, out, codec)
    if install_signals:
        producer.install_signal_flush(on_signal=poller.stop)
    hb.start()
    if on_poller is not None:
        on_poller(poller)
    rc = 0
    clean = False
    try:
        poller.run(check=producer.check_fatal)
        clean = True
    except FatalProducerError as exc:
        log.critical("fatal producer error, stopping %s", kv(source=adapter.source, error=exc))
        rc = EXIT_FATAL
    except SystemExit as exc:  # the signal handler's exit after its flush (a second signal)
        clean = exc.code in (0, None)
        raise
    finally:
        hb.stop()
        if clean and vendors.spec(adapter.source).bar_rollup:
            for m in markers:
                out.end_session(m.stream)
        # Only a clean stop whose flush left nothing queued is marked; otherwise the next session's Gap.
        if producer.flush(30) == 0 and clean and producer.fatal_error is None:
            for m in markers:
                m.stop(out.last_seq(m.stream))
    return rc


def session_markers(
    settings: RestIngestSettings, adapter: RestAdapter, out: RawPublisher, codec: Any
) -> list[SessionMarker]:
    """Start one session marker per stream of the feeds (each may publish the previous session's Gap)."""
    markers = []
    for stream in sorted({f.stream for f in adapter.feeds()}):

        def gap(last_seq: int | None, ts_start: int, detail: str, stream: str = stream) -> None:
            out.gap(stream, last_seq, None, ts_start, time.time_ns(), detail, reason="dropped")

        marker = SessionMarker(
            out.producer, settings.kafka_bootstrap_servers, topic=settings.topic(SESSIONS_TOPIC),
            raw_topic=out.raw_topic, source=adapter.source, stream=stream, session=out.session,
            encode=codec.encode, decode=codec.decode,
        )  # fmt: skip
        marker.start(gap)
        markers.append(marker)
    return markers


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
