"""`tickwire normalize`: the faust worker turning ``<vendor>.raw`` into Avro canonical topics.

Topology: one agent per raw topic (concurrency 1), each with its own state table co-partitioned with its
raw topic. Per-vendor agents keep vendors independent (a burst on one raw topic does not queue another's
records behind it) and let raw topics have different partition counts (a faust table must have exactly
its source topic's partition count). All the meaning is in ``tickwire.normalize.pipeline``; this module moves
bytes and keeps the books.

Exactly-once: faust-streaming's transaction manager (0.15.3) picks the transaction of a *sent* record
from the destination topic's partition and topic group, which only works for co-partitioned internal
topics; records sent to our canonical topics would fail or land outside the transaction. ``_TxnManager``
fixes that: a record sent while processing raw record (topic, p) joins the transaction of (topic, p),
the one that also carries that partition's consumer offset and table changelog. Commits wait for the
message being processed (one lock), flush buffered changelog writes into the transaction and commit the
offset of the last fully processed record, so offsets, state and output are always in step. Consumers of
the canonical topics must read with isolation.level=read_committed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, MutableMapping
from typing import Any

from tickwire.logs import kv
from tickwire.normalize.config import NormalizerSettings

log = logging.getLogger(__name__)

SUFFIXES = ("_trades_realtime", "_quotes_realtime", "_bars_staging", "_book_realtime")


def output_topics(prefix: str, vendors: list[str]) -> list[str]:
    """Every topic the normalizer may write (for --create-topics)."""
    from tickwire.contract import routing

    names = [p + s for p in routing.PREFIX.values() for s in SUFFIXES]
    names += [routing.GAPS_TOPIC, routing.INSTRUMENTS_TOPIC]
    names += [f"{v}.raw.dlq" for v in vendors]
    return [prefix + n for n in names]


def prepare_topics(s: NormalizerSettings, vendors: list[str]) -> dict[str, int]:
    """Partition count of each raw topic; creates missing topics when ``create_topics`` is set."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": s.bootstrap_servers})
    raw = [f"{s.topic_prefix}{v}.raw" for v in vendors]
    existing = admin.list_topics(timeout=15).topics
    if s.create_topics:
        missing = [t for t in [*raw, *output_topics(s.topic_prefix, vendors)] if t not in existing]
        if missing:
            futs = admin.create_topics([NewTopic(t, s.default_partitions, 1) for t in missing])
            for f in futs.values():
                try:
                    f.result(15)
                except Exception as exc:  # already created by a concurrent worker is fine
                    if "TOPIC_ALREADY_EXISTS" not in str(exc):
                        raise
            log.info("created topics %s", kv(topics=",".join(missing)))
        existing = admin.list_topics(timeout=15).topics
    counts: dict[str, int] = {}
    for t in raw:
        md = existing.get(t)
        if md is None:
            raise SystemExit(f"raw topic {t!r} does not exist (apply topics.yaml or use --create-topics)")
        counts[t] = len(md.partitions)
    # Our table changelogs: created here, before the worker starts, because faust creating them during
    # its first rebalance races its own metadata ("changelog has 0 partitions", agent crash loop).
    changelogs = {changelog_topic(s.effective_app_id, v): counts[f"{s.topic_prefix}{v}.raw"] for v in vendors}
    new = [
        NewTopic(t, n, 1, config={"cleanup.policy": "compact"})
        for t, n in changelogs.items()
        if t not in existing
    ]
    if new:
        for f in admin.create_topics(new).values():
            try:
                f.result(15)
            except Exception as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise
    for t, n in changelogs.items():
        md = existing.get(t)
        if md is not None and len(md.partitions) != n:
            raise SystemExit(f"changelog {t!r} has {len(md.partitions)} partitions, its raw topic {n}")
    return counts


def table_name(vendor: str) -> str:
    return f"state-{vendor}"


def changelog_topic(app_id: str, vendor: str) -> str:
    return f"{app_id}-{table_name(vendor)}-changelog"


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter

        p = "tickwire_normalizer_"
        self.raw_in = Counter(p + "raw_records_total", "raw records consumed", ["topic"])
        self.out = Counter(p + "records_out_total", "records produced", ["topic"])
        self.dlq = Counter(p + "dlq_total", "raw records sent to the DLQ", ["topic", "error"])
        self.control = Counter(p + "control_frames_total", "vendor control frames skipped", ["topic"])
        self.dupes = Counter(p + "duplicates_total", "raw records skipped as already seen", ["topic"])
        self.gaps = Counter(p + "gaps_total", "gaps published", ["topic"])
        self.late = Counter(p + "late_trades_total", "trades too late for their bar window", ["topic"])
        self.crossed = Counter(p + "crossed_quotes_total", "crossed quotes published, flagged", ["topic"])
        self.bars = Counter(p + "aggregated_bars_total", "1m bars aggregated from trades", ["topic"])
        self.rewinds = Counter(
            p + "offset_rewinds_total", "partition state resets on offset rewind", ["topic"]
        )
        self.resync = Counter(p + "resync_requests_total", "symbols whose book needs a resync", ["topic"])
        # ``.labels()`` costs microseconds (lock, tuple, dict): bound children are kept here.
        self._children: dict[tuple[Any, ...], Any] = {}

    def child(self, counter: Any, *labels: str) -> Any:
        k = (id(counter), *labels)
        c = self._children.get(k)
        if c is None:
            c = self._children[k] = counter.labels(*labels)
        return c

    def account(self, name: str, res: Any) -> None:
        """Count one raw record's result (``res`` is a pipeline ``Result``)."""
        child = self.child
        child(self.raw_in, name).inc()
        for o in res.outputs:
            child(self.out, o.topic).inc()
        if res.status == "dlq":
            child(self.dlq, name, res.error_class or "").inc()
        elif res.status == "control":
            child(self.control, name).inc()
        elif res.status == "duplicate":
            child(self.dupes, name).inc()
        if res.gaps:
            child(self.gaps, name).inc(res.gaps)
        if res.late_trades:
            child(self.late, name).inc(res.late_trades)
        if res.crossed:
            child(self.crossed, name).inc(res.crossed)
        if res.bars:
            child(self.bars, name).inc(res.bars)
        if res.rewound:
            child(self.rewinds, name).inc()
        if res.resync:
            child(self.resync, name).inc(len(res.resync))


# One pending output: topic, partition (None: the producer's partitioner picks by key), key, value, headers.
_Pending = tuple[str, "int | None", "bytes | None", "bytes | None", list[tuple[str, bytes]]]


class _Shared:
    """What the agents and the transaction manager share.

    ``lock`` serializes processing and commits. ``processed`` holds the offset of the last fully processed
    raw record per partition. ``pending`` holds the output records of processed raw records that were not
    yet handed to their transactional producer, per transactional id, in processing order: they are
    handed over in batches (one Kafka record batch per destination partition) when enough accumulate and
    always before a commit, so every commit carries exactly the outputs of the records it marks processed.
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.processed: dict[Any, int] = {}  # TP -> offset of the last fully processed raw record
        self.pending: dict[str, list[_Pending]] = {}
        self.n_pending = 0
        self.commit_lock = asyncio.Lock()
        self.committing = False  # a commit is in flight: the producers are not in a transaction


FLUSH_RECORDS = 4000  # pending outputs that trigger a hand-over to the producers before the commit
MAX_PENDING = 200_000  # pending outputs at which processing waits for the commit in flight


def build_app(s: NormalizerSettings, vendors: list[str], partitions: Mapping[str, int]) -> Any:
    import faust
    from faust.transport.consumer import TransactionManager
    from faust.transport.drivers import aiokafka as fa
    from faust.types import TP

    from tickwire import vendors as registry
    from tickwire.contract import routing
    from tickwire.contract.codec import Codec
    from tickwire.normalize.pipeline import Pipeline

    shared = _Shared()
    metrics = Metrics()
    pipelines: list[Pipeline] = []
    stores: list[_TableStore] = []
    part_cache: dict[tuple[str, bytes], int] = {}

    def tid_for(topic: str, partition: int) -> str:
        # faust's transactional id of a source partition (see faust TransactionManager.commit).
        return f"{app.conf.id}-{app.assignor.group_for_topic(topic)}-{partition}"

    async def _send(tid: str, recs: list[_Pending]) -> None:
        # Straight to the aiokafka transactional producer faust keeps for ``tid``: faust's Topic.send
        # costs tens of microseconds per record; a record batch per destination partition costs ~1 us.
        fp: Any = app.producer  # faust's aiokafka driver Producer: one aiokafka producer per tid
        producer = fp._transaction_producers.get(tid)
        if producer is None:  # partition revoked meanwhile: its transaction is gone, so are these
            log.warning("dropping outputs of a revoked partition %s", kv(tid=tid, records=len(recs)))
            return
        async with fp._trn_locks[tid]:
            builders: dict[tuple[str, int], Any] = {}
            for topic, part, key, value, headers in recs:
                if part is None:
                    part = part_cache.get((topic, key)) if key is not None else None
                    if part is None:
                        await producer.client._wait_on_metadata(topic)
                        part = producer._partition(topic, None, key, value, key, value)
                        if key is not None:
                            part_cache[(topic, key)] = part
                tp = (topic, part)
                b = builders.get(tp)
                if b is None:
                    b = builders[tp] = producer.create_batch()
                if b.append(timestamp=None, key=key, value=value, headers=headers) is None:
                    await producer.send_batch(b, topic, partition=part)  # full: send, start another
                    b = builders[tp] = producer.create_batch()
                    if b.append(timestamp=None, key=key, value=value, headers=headers) is None:
                        raise ValueError(f"record for {topic} larger than producer_max_batch_size")
            for (topic, part), b in builders.items():
                await producer.send_batch(b, topic, partition=part)

    async def flush() -> None:
        """Hand pending outputs and dirty state (changelog records) to the producers. Lock held."""
        for store in stores:
            for partition, items in store.take_dirty().items():
                tid = tid_for(store.source_topic, partition)
                recs = shared.pending.setdefault(tid, [])
                for k, v in items:
                    recs.append((store.changelog, partition, k, v, []))
        pending, shared.pending, shared.n_pending = shared.pending, {}, 0
        for tid, recs in pending.items():
            await _send(tid, recs)

    class _TxnManager(TransactionManager):
        async def send(
            self,
            topic: str,
            key: bytes | None,
            value: bytes | None,
            partition: int | None,
            timestamp: float | None,
            headers: Any,
            *,
            transactional_id: str | None = None,
        ) -> Any:
            event = faust.current_event()
            if event is None:  # buffered changelog writes: destination partition == source partition
                return await super().send(topic, key, value, partition, timestamp, headers)
            src = event.message
            tid = tid_for(src.topic, src.partition)
            return await self.producer.send(
                topic, key, value, partition, timestamp, headers, transactional_id=tid
            )

        async def commit(self, offsets: Mapping[Any, int], start_new_transaction: bool = True) -> bool:
            async with shared.commit_lock, shared.lock:
                # The whole commit holds the processing lock: outputs, state and offsets of exactly the
                # records processed so far go into the transactions, and nothing is processed until
                # they are committed. (Releasing the lock during the commit was faster but lost and
                # duplicated records across kills, intermittently, in CI.) Commits of different
                # transactional ids are independent, so they run concurrently.
                await flush()
                await self.app.producer.buffer.flush()
                done = {tp: max(off, shared.processed.get(tp, -1) + 1) for tp, off in offsets.items()}
                shared.committing = True
                try:
                    by_tid: dict[str, dict[Any, int]] = {}
                    for tp, off in done.items():
                        by_tid.setdefault(tid_for(tp.topic, tp.partition), {})[tp] = off
                    group_id = self.app.conf.id
                    await asyncio.gather(
                        *(
                            self._commit_one(tid, offs, group_id, start_new_transaction)
                            for tid, offs in by_tid.items()
                        )
                    )
                finally:
                    shared.committing = False
                return True

        async def _commit_one(
            self, tid: str, offsets: dict[Any, int], group_id: str, start_new_transaction: bool
        ) -> None:
            from aiokafka.errors import ProducerFenced  # type: ignore[import-untyped]

            try:
                await self.producer.commit_transactions(
                    {tid: offsets}, group_id, start_new_transaction=start_new_transaction
                )
            except ProducerFenced as pf:  # as faust does: another worker owns the partition now
                log.warning("producer fenced %s", kv(tid=tid, error=pf))
                await self.app.crash(pf)

    class _Transport(fa.Transport):
        TransactionManager = _TxnManager

    class _App(faust.App):
        def _new_transport(self) -> Any:
            return _Transport(self.conf.broker_consumer, self)

    app_id = s.effective_app_id
    os.makedirs(s.data_dir, exist_ok=True)
    app = _App(
        app_id,
        broker=f"kafka://{s.bootstrap_servers}",
        processing_guarantee=s.processing_guarantee,
        store="memory://",
        datadir=os.path.join(s.data_dir, app_id),
        web_enabled=False,
        autodiscover=False,
        broker_commit_interval=s.commit_interval_s,
        consumer_auto_offset_reset="earliest",
        table_standby_replicas=0,
        topic_replication_factor=1,
        stream_wait_empty=False,
        broker_session_timeout=10.0,
        broker_heartbeat_interval=1.0,
        producer_acks=-1,
        producer_max_batch_size=s.producer_max_batch_size,
        producer_linger_ms=s.producer_linger_ms,
        stream_buffer_maxsize=s.stream_buffer_maxsize,
        broker_max_poll_records=s.max_poll_records,
    )
    codec = Codec(s.schema_registry_url)

    for vendor in vendors:
        raw_name = f"{s.topic_prefix}{vendor}.raw"
        table = app.Table(
            table_name(vendor),
            default=None,
            partitions=partitions[raw_name],
            # JSON text values: faust decodes changelog records on recovery with the table's value
            # serializer, and only str survives that round trip unchanged (raw bytes come back parsed).
            schema=faust.Schema(key_type=str, value_type=str, key_serializer="json", value_serializer="json"),
        )
        store = _TableStore(table, raw_name, changelog_topic(app_id, vendor))
        pipeline = Pipeline(
            get_parser=registry.get_parser,
            encode=codec.encode,
            topic_for=routing.topic_for,
            key_for=routing.key_for,
            store=store,
            topic_prefix=s.topic_prefix,
            bar_sources=s.bar_source_set(),
            bar_lateness_ns=s.bar_lateness_ms * 1_000_000,
            seq_gap_sources=s.seq_gap_source_set(),
        )
        raw_topic = app.topic(raw_name, key_serializer="raw", value_serializer="raw")
        pipelines.append(pipeline)
        stores.append(store)
        _make_agent(app, raw_topic, pipeline, shared, metrics, TP, tid_for, flush)

    async def _revoked(sender: Any, revoked: Any, **_: Any) -> None:
        # Another worker may own these partitions next: in-memory caches must be rebuilt from tables,
        # and whatever was not committed is not ours to send any more.
        part_cache.clear()
        for p in pipelines:
            for tp in revoked:
                p.forget_partition(tp.topic, tp.partition)
                shared.processed.pop(tp, None)
        for st in stores:
            for tp in revoked:
                if tp.topic == st.source_topic:
                    st.drop_dirty(tp.partition)
                    dropped = shared.pending.pop(tid_for(tp.topic, tp.partition), [])
                    shared.n_pending -= len(dropped)

    app.on_partitions_revoked.connect(_revoked)  # type: ignore[arg-type]
    return app


def _make_agent(
    app: Any,
    raw_topic: Any,
    pipeline: Any,
    shared: _Shared,
    metrics: Metrics,
    TP: Any,
    tid_for: Any,
    flush: Any,
) -> None:
    from tickwire.normalize.pipeline import RawMessage

    name = raw_topic.get_topic_name()
    tids: dict[int, str] = {}

    async def normalize_raw(stream: Any) -> None:
        async for event in stream.events():
            m = event.message
            async with shared.lock:
                raw = RawMessage(m.topic, m.partition, m.offset, m.key, m.value, list(m.headers or ()))
                try:
                    res = pipeline.process(raw)
                except Exception as exc:  # our bug or corrupt state: still never stop the agent
                    log.exception("normalizer internal error %s", kv(topic=m.topic, offset=m.offset))
                    res = pipeline.internal_error(raw, exc)
                if res.outputs:
                    tid = tids.get(m.partition)
                    if tid is None:
                        tid = tids[m.partition] = tid_for(m.topic, m.partition)
                    recs = shared.pending.get(tid)
                    if recs is None:
                        recs = shared.pending[tid] = []
                    for o in res.outputs:
                        recs.append((o.topic, None, o.key, o.value, o.headers or []))
                    shared.n_pending += len(res.outputs)
                shared.processed[TP(m.topic, m.partition)] = m.offset
                if shared.n_pending >= FLUSH_RECORDS and not shared.committing:
                    await flush()
            if shared.n_pending >= MAX_PENDING:  # memory bound while a slow commit is in flight
                while shared.committing:
                    await asyncio.sleep(0.002)
            metrics.account(name, res)

    normalize_raw.__name__ = normalize_raw.__qualname__ = "normalize_" + name.replace(".", "_").replace(
        "-", "_"
    )
    app.agent(raw_topic, name=f"normalize-{name}", concurrency=1)(normalize_raw)


class _TableStore(MutableMapping[str, bytes]):
    """A faust Table seen as the pipeline's ``MutableMapping[str, bytes]``, written back once per flush.

    Reads and writes go to the table's in-memory data directly (no changelog record per write); the keys
    written since the last flush are remembered per source partition (every pipeline key carries
    ``topic|partition`` as its 2nd and 3rd fields) and ``take_dirty`` turns them into changelog records
    (their latest value, or a tombstone) for that partition's transaction. A key written ten times between
    two commits costs one changelog record.
    """

    def __init__(self, table: Any, source_topic: str, changelog: str) -> None:
        self.t = table
        self.source_topic = source_topic
        self.changelog = changelog
        self.dirty: dict[int, set[str]] = {}

    def _d(self) -> dict[str, Any]:
        d: dict[str, Any] = self.t.data.data  # the memory store's dict (faust recovery fills it too)
        return d

    def _mark(self, k: str) -> None:
        p = int(k.split("|", 3)[2])
        ks = self.dirty.get(p)
        if ks is None:
            ks = self.dirty[p] = set()
        ks.add(k)

    def __getitem__(self, k: str) -> bytes:
        v = self._d()[k]
        if not isinstance(v, str):
            raise TypeError(f"state table value for {k!r} is {type(v).__name__}, not JSON text")
        return v.encode()

    def get(self, k: str, default: Any = None) -> Any:
        v = self._d().get(k)
        if v is None:
            return default
        if not isinstance(v, str):
            raise TypeError(f"state table value for {k!r} is {type(v).__name__}, not JSON text")
        return v.encode()

    def __setitem__(self, k: str, v: bytes) -> None:
        self._d()[k] = v.decode()
        self._mark(k)

    def __delitem__(self, k: str) -> None:
        del self._d()[k]
        self._mark(k)

    def __contains__(self, k: object) -> bool:
        return k in self._d()

    def __iter__(self) -> Any:
        return iter(list(self._d().keys()))

    def __len__(self) -> int:
        return len(self._d())

    def take_dirty(self) -> dict[int, list[tuple[bytes, bytes | None]]]:
        """Changelog records (JSON key, JSON value or None = tombstone) of the keys written since last."""
        import msgspec

        d = self._d()
        out: dict[int, list[tuple[bytes, bytes | None]]] = {}
        enc = msgspec.json.encode
        for p, keys in self.dirty.items():
            recs = out[p] = []
            for k in sorted(keys):  # sorted: deterministic changelog order
                v = d.get(k)
                recs.append((enc(k), None if v is None else enc(v)))
        self.dirty = {}
        return out

    def drop_dirty(self, partition: int) -> None:
        self.dirty.pop(partition, None)


# ---- command line ---------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tickwire normalize", description=__doc__.splitlines()[0])
    ap.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP_SERVERS)")
    ap.add_argument("--vendors", help="comma-separated vendor ids (default: every registered vendor)")
    ap.add_argument("--topic-prefix", help="prefix for every topic and the app id (test isolation)")
    ap.add_argument("--metrics-port", type=int, help="prometheus port (0 = off)")
    ap.add_argument("--group", help="consumer group / faust app id (default tickwire-normalizer)")
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
        ("processing_guarantee", a.processing_guarantee),
        ("log_level", a.log_level),
    ):
        if value is not None:
            overrides[field] = value
    if a.create_topics:
        overrides["create_topics"] = True
    s = NormalizerSettings.load(**overrides)

    from tickwire import vendors as registry

    vendors = s.vendor_list() or registry.names()
    for v in vendors:
        registry.get_parser(v)  # fail fast on an unknown vendor or a broken parser module
    partitions = prepare_topics(s, vendors)
    app = build_app(s, vendors, partitions)
    if s.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(s.metrics_port, addr="127.0.0.1")
    log.info(
        "normalizer starting %s",
        kv(app_id=app.conf.id, vendors=",".join(vendors), guarantee=s.processing_guarantee),
    )
    return _run_worker(app, s.log_level)


def _run_worker(app: Any, loglevel: str) -> int:
    import faust

    worker = faust.Worker(app, loglevel=loglevel, quiet=True, redirect_stdouts=False)
    # mode's worker stops gracefully on SIGTERM/SIGINT; make sure SIGTERM is not ignored by a parent.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
