"""`tickwire normalize`: the worker turning ``<vendor>.raw`` into Avro canonical topics, on tickwire.runtime.

One ``StreamWorker`` (confluent-kafka consumer group, cooperative-sticky) subscribes to every configured
raw topic; scale-out is more processes in the same group. All the meaning is in
``tickwire.normalize.pipeline``; this module wires it to the runtime and keeps the books.

Exactly-once (the default): one transactional producer per process (KIP-447). Canonical records, DLQ
records and gaps are produced as they are made; every ``commit_interval_s`` (or ``commit_max_records``)
the pipeline's state (dedupe cursors, open bars, last offsets, parser-state snapshots: one changelog
topic per raw topic, partition = raw partition) and the raw offsets commit in the same transaction.
Any failure or rebalance aborts, rolls the state back to the last commit and rewinds to the committed
offsets (see ``tickwire.runtime``). Consumers of the canonical topics read ``read_committed``.
At-least-once (``--processing-guarantee at_least_once``): no transactions; offsets are committed once
every output of the records before them is delivered.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

from tickwire.contract.errors import classify
from tickwire.contract.kafka_security import client_conf
from tickwire.logs import kv
from tickwire.normalize.config import NormalizerSettings
from tickwire.normalize.metrics import Metrics
from tickwire.normalize.pipeline import Pipeline, RawMessage, build_pipeline
from tickwire.normalize.sizes import state_sizes
from tickwire.runtime import TP, Context, Message, PartitionState, Processor, StreamConfig, StreamWorker
from tickwire.runtime import changelog_topic as _runtime_changelog

log = logging.getLogger(__name__)

SUFFIXES = ("_trades_realtime", "_quotes_realtime", "_bars_staging", "_book_realtime")


def output_topics(prefix: str, vendors: list[str]) -> list[str]:
    """Every topic the normalizer may write (for --create-topics)."""
    from tickwire.contract import routing

    names = [p + s for p in routing.PREFIX.values() for s in SUFFIXES]
    names += [routing.GAPS_TOPIC, routing.INSTRUMENTS_TOPIC, *routing.ANALYTICS_TOPICS.values()]
    names += [f"{v}.raw.dlq" for v in vendors]
    return [prefix + n for n in names]


def raw_topics(s: NormalizerSettings, vendors: list[str]) -> list[str]:
    return [f"{s.topic_prefix}{v}.raw" for v in vendors]


def changelog_topic(s: NormalizerSettings, vendor: str) -> str:
    """The state changelog of one vendor's raw topic (created by the runtime when missing)."""
    return _runtime_changelog(s.effective_app_id, f"{s.topic_prefix}{vendor}.raw")


def prepare_topics(s: NormalizerSettings, vendors: list[str]) -> None:
    """Create missing raw and output topics when ``create_topics`` is set; the raw topics must exist."""
    from confluent_kafka.admin import AdminClient

    if s.create_topics:
        from tickwire.topic_admin import ensure_topics

        names = [*raw_topics(s, vendors), *output_topics(s.topic_prefix, vendors)]
        ensure_topics(s.bootstrap_servers, dict.fromkeys(names, s.default_partitions))
    admin = AdminClient(client_conf(s.bootstrap_servers) | {**s.kafka_client_config})
    existing = admin.list_topics(timeout=15).topics
    for t in raw_topics(s, vendors):
        if t not in existing:
            raise SystemExit(f"raw topic {t!r} does not exist (apply topics.yaml or use --create-topics)")


def stream_config(s: NormalizerSettings, vendors: list[str]) -> StreamConfig:
    return StreamConfig(
        bootstrap_servers=s.bootstrap_servers,
        kafka_client=dict(s.kafka_client_config),
        group_id=s.effective_app_id,
        topics=tuple(raw_topics(s, vendors)),
        guarantee=s.processing_guarantee,
        stateful=True,
        instance_id=s.instance_id,
        static_membership=s.static_membership,
        batch_size=s.batch_size,
        commit_interval_ms=max(1, round(s.commit_interval_s * 1000)),
        commit_max_records=s.commit_max_records,
        commit_max_outputs=s.commit_max_outputs,
        linger_ms=s.producer_linger_ms,
        session_timeout_ms=s.session_timeout_ms,
        transaction_timeout_ms=s.transaction_timeout_ms,
        loop_stall_s=s.loop_stall_s,
        client_id=f"{s.effective_app_id}-{s.instance_id or 'worker'}",
    )


class NormalizeProcessor(Processor):
    """Each raw record through the pipeline, inside its own error boundary, outputs emitted at once."""

    def __init__(self, pipeline: Pipeline, metrics: Metrics | None = None) -> None:
        self.pipeline = pipeline
        self.metrics = metrics
        self._states: dict[TP, PartitionState] = {}  # the runtime's store of each assigned partition
        self._outage: tuple[float, str] | None = None  # last infrastructure error (monotonic time, what)
        if metrics is not None:  # bounded state, visible: entries per kind at scrape time
            metrics.watch_state(lambda: state_sizes(pipeline, list(self._states.values())))

    def process(self, msg: Message, ctx: Context) -> None:
        topic = msg.topic()
        raw = RawMessage(topic, msg.partition(), msg.offset(), msg.key(), msg.value(), msg.headers() or [])
        try:
            res = self.pipeline.process(raw, ctx.state)
        except BaseException as exc:
            if classify(exc) in ("exit", "infra"):
                # An outage: raise, the runtime rolls the cycle back and retries this record after a
                # backoff delay (nothing else is consumed meanwhile); a process exit: never swallowed.
                if self.metrics is not None:
                    self.metrics.infra_retry(topic, exc)
                self._outage = (time.monotonic(), f"{type(exc.__cause__ or exc).__name__}: {exc}")
                raise
            # Our bug or corrupt state: the record goes to the DLQ as an internal error, never a crash.
            log.exception(
                "normalizer internal error %s", kv(topic=topic, partition=raw.partition, offset=raw.offset)
            )
            res = self.pipeline.internal_error(raw, exc)
        if self._outage is not None:  # a record went through: the outage is over
            self._outage = None
        emit = ctx.emit
        for o in res.outputs:
            emit(o.topic, o.key, o.value, o.headers)
        if self.metrics is not None:
            self.metrics.account(topic, res)

    def outage(self) -> str | None:
        """Readiness: the reason while records are being retried after an outage (the last 10 s)."""
        o = self._outage
        if o is None or time.monotonic() - o[0] > 10.0:
            return None
        return f"retrying after an infrastructure error: {o[1]}"

    def before_commit(self, tps: list[TP]) -> None:
        if self.metrics is not None:
            self.metrics.flush()
        # Parser state goes into the store once per commit, not per record (it is a snapshot).
        for tp in tps:
            st = self._states.get(tp)
            if st is not None:
                self.pipeline.checkpoint(tp.topic, tp.partition, st)

    def on_assign(self, tp: TP, state: PartitionState) -> None:
        self._states[tp] = state

    def on_reset(self, tps: list[TP], reason: str) -> None:
        if self.metrics is not None and reason == "abort":
            self.metrics.discard()  # the cycle's records are processed again
        for tp in tps:
            self.pipeline.forget_partition(tp.topic, tp.partition)
            if reason != "abort":
                self._states.pop(tp, None)


# ---- command line ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tickwire normalize", description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS)")
    ap.add_argument("--vendors", help="comma-separated vendor ids (default: every registered vendor)")
    ap.add_argument("--topic-prefix", help="prefix for every topic and the group (test isolation)")
    ap.add_argument("--metrics-port", type=int, help="prometheus port (0 = off)")
    ap.add_argument("--group", help="consumer group (default tickwire-normalizer)")
    ap.add_argument("--instance-id", help="stable id of this worker slot (transactional id suffix)")
    ap.add_argument("--create-topics", action="store_true", help="create missing raw and output topics")
    ap.add_argument(
        "--processing-guarantee", choices=["exactly_once", "at_least_once"], help="default exactly_once"
    )
    ap.add_argument("--log-level", help="DEBUG, INFO, WARNING, ...")
    return ap


def main(argv: list[str]) -> int:
    a = _parser().parse_args(argv)
    overrides: dict[str, Any] = {}
    for field, value in (
        ("bootstrap_servers", a.bootstrap),
        ("vendors", a.vendors),
        ("topic_prefix", a.topic_prefix),
        ("metrics_port", a.metrics_port),
        ("group", a.group),
        ("instance_id", a.instance_id),
        ("processing_guarantee", a.processing_guarantee),
        ("log_level", a.log_level),
    ):
        if value is not None:
            overrides[field] = value
    if a.create_topics:
        overrides["create_topics"] = True
    s = NormalizerSettings.load(**overrides)
    from tickwire import logs
    from tickwire import vendors as registry
    from tickwire.runtime import FatalRuntimeError, install_signal_handlers

    logs.setup(s.log_level)
    vendors = s.vendor_list() or registry.names()
    for v in vendors:
        registry.get_parser(v)  # fail fast on an unknown vendor or a broken parser module
    prepare_topics(s, vendors)
    processor = NormalizeProcessor(build_pipeline(s), Metrics())
    worker = StreamWorker(stream_config(s, vendors), processor)
    install_signal_handlers(worker)
    if s.metrics_port:
        from tickwire.runtime.httpd import HEALTH, serve

        HEALTH.liveness("worker", lambda: None if worker.fatal is None else f"fatal: {worker.fatal}")
        HEALTH.liveness("loop", worker.heartbeat.check)  # a wedged worker loop: restart (/healthz 503)
        HEALTH.readiness("outage", processor.outage)
        serve(s.metrics_port, "127.0.0.1")
    log.info(
        "normalizer starting %s",
        kv(group=s.effective_app_id, vendors=",".join(vendors), guarantee=s.processing_guarantee),
    )
    try:
        return worker.run()
    except FatalRuntimeError as exc:
        # Exit non-zero: the supervisor restarts us and the new process restores from the changelogs.
        log.error("normalizer stopping on a fatal error %s", kv(error=exc))
        return 3


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
