"""``StreamWorker``: the transform worker, exactly-once (KIP-447) or at-least-once. See the package doc.

One cycle = the records processed since the last commit. Exactly-once: the cycle's outputs, its changelog
records and its input positions are one transaction. Any failure rolls the *whole* cycle back: abort,
discard every partition's dirty state, tell the processor, seek every partition to its committed offset.
The invariant "in-memory state == changelog state at the committed offsets" holds at every cycle
boundary, so a rollback can never lose or duplicate a record.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from tickwire.backoff import Backoff
from tickwire.logs import kv
from tickwire.runtime import txn
from tickwire.runtime.config import StreamConfig, batch_for
from tickwire.runtime.errors import FatalRuntimeError, Rollback
from tickwire.runtime.group import GroupMember
from tickwire.runtime.httpd import Heartbeat
from tickwire.runtime.processor import TP, Context, Headers, Message, Processor
from tickwire.runtime.state import PartitionState, changelog_topic, ensure_changelogs, restore

log = logging.getLogger(__name__)

_EOF = KafkaError._PARTITION_EOF
# Heartbeat grace of the bounded calls longer than the loop's stall limit (tickwire.runtime.httpd):
_SETUP_S = 60.0  # ensure_changelogs: up to four 15 s list/create/visibility waits (runtime/state.py)
_COMMITTED_S = 60.0  # consumer.committed(timeout=60) in GroupMember._on_assign (runtime/group.py)


class StreamWorker(GroupMember):
    def __init__(self, cfg: StreamConfig, processor: Processor) -> None:
        super().__init__(cfg)
        self.scfg = cfg
        self.processor = processor
        self.eos = cfg.guarantee == "exactly_once"
        self.app_id = cfg.effective_app_id
        self.states: dict[TP, PartitionState] = {}
        self.producer: Any = None
        self.ctx = Context(self._emit)
        self._in_txn = False
        self._cycle_records = 0  # input records processed in the open cycle
        self._cycle_outputs = 0  # records produced in the open cycle
        # consume() size: starts at one record (fan-out unknown), then sized by the fan-out observed.
        self._batch_n = 1
        self._cycle_start = 0.0
        self._backoff = Backoff(cfg.retry_base_s, cfg.retry_cap_s)  # between rolled-back cycles
        self._delivery_error: KafkaError | None = None
        self.transactional_id = cfg.transactional_id() if self.eos else None
        self._replace_producer = False  # a fatal producer error the rollback recovers from (runtime.txn)
        self._fences = txn.FenceGuard()
        self._bounded = txn.Bounded()
        # Deep liveness: stamped every loop iteration; a wedged loop fails /healthz (see httpd.Heartbeat).
        self.heartbeat = Heartbeat(cfg.group_id, cfg.loop_stall_s)

    # -- run --

    def run(self) -> int:
        """Process until ``stop()``; 0 after a clean stop. Raises ``FatalRuntimeError`` when the worker
        cannot continue safely (the process should exit non-zero and be restarted)."""
        cfg = self.scfg
        self.heartbeat.beat(grace_s=_SETUP_S + cfg.commit_timeout_s)  # + init_transactions
        if cfg.stateful:
            ensure_changelogs(
                AdminClient(cfg.admin_conf()), self.app_id, cfg.topics, cfg.changelog_replication_factor
            )
        self._new_producer()
        self._subscribe()
        try:
            while not self.stopping:
                self._step()
            self._end_cycle([])
        except FatalRuntimeError as exc:
            self.fatal = self.fatal or exc
            raise
        finally:
            self._shutdown()
        return 0

    def _step(self) -> None:
        self.heartbeat.beat()
        now = time.monotonic()
        timeout = self.cfg.poll_timeout_ms / 1000
        if self._cycle_records:
            timeout = max(0.0, min(timeout, self._cycle_start + self.cfg.commit_interval_ms / 1000 - now))
        try:
            msgs = self.consumer.consume(self._batch_n, timeout)
            if self.fatal is not None:
                raise self.fatal
            if msgs:
                self.metrics.batch.observe(len(msgs))
                out0 = self._cycle_outputs
                try:
                    self._process(msgs)
                finally:
                    self.metrics.records_out.inc(max(0, self._cycle_outputs - out0))
                fanout = (self._cycle_outputs - out0) / len(msgs)
                self._batch_n = batch_for(fanout, self.cfg.batch_size, self.cfg.commit_max_outputs)
            now = time.monotonic()
            if self._cycle_records and (
                self._cycle_records >= self.cfg.commit_max_records
                or self._cycle_outputs >= self.cfg.commit_max_outputs
                or now - self._cycle_start >= self.cfg.commit_interval_ms / 1000
            ):
                self._commit()
        except Rollback as rb:
            self._rollback(rb)
        self.producer.poll(0)
        self._update_lag(now)

    def _process(self, msgs: list[Message]) -> None:
        ctx = self.ctx
        proc = self.processor.process
        states = self.states
        last_t: str | None = None
        last_p = -1
        st: PartitionState | None = None
        n = 0
        try:
            for m in msgs:
                err = m.error()
                if err is not None:
                    self._consumer_error(err)
                    continue
                t, p = m.topic(), m.partition()
                if p != last_p or t != last_t:
                    tp = TP(t, p)
                    st = states.get(tp)
                    last_t, last_p = t, p
                    ctx.tp = tp
                    if st is not None:
                        ctx.state = st
                        self._seen(tp, m.offset())
                if st is None:
                    continue  # a revoked partition's straggler: its new owner processes it
                if not self._cycle_records and not n:
                    self._begin()
                proc(m, ctx)
                n += 1
        except Rollback:
            raise
        except KafkaException as exc:
            raise Rollback("produce", exc) from exc
        except Exception as exc:
            log.exception("processor raised %s", kv(group=self.cfg.group_id, tp=ctx.tp))
            raise Rollback("processor", exc) from exc
        finally:
            self._cycle_records += n
            self.metrics.records_in.inc(n)
        if len(self.producer) > self.scfg.max_in_flight:
            self._drain(self.scfg.max_in_flight)
        if self._delivery_error is not None:
            raise Rollback("delivery", KafkaException(self._delivery_error))

    def _consumer_error(self, err: KafkaError) -> None:
        if err.code() == _EOF:
            return
        if err.fatal():
            raise FatalRuntimeError(f"consumer: {err}")
        log.warning("consumer error %s", kv(group=self.cfg.group_id, error=err))

    # -- producing --

    def _emit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None = None,
        partition: int | None = None,
    ) -> None:
        produce = self.producer.produce
        part = -1 if partition is None else partition
        while True:
            try:
                if headers:
                    produce(topic, value, key, part, headers=headers)
                else:
                    produce(topic, value, key, part)
                break
            except BufferError:  # local queue full: serve delivery reports, then try again
                self.producer.poll(0.01)
        self._cycle_outputs += 1  # counted into the metric once per batch (_step): a Counter.inc is ~1 us

    def _drain(self, limit: int) -> None:
        """Bounded in-flight window: wait until at most ``limit`` records are undelivered."""
        deadline = time.monotonic() + self.scfg.commit_timeout_s
        while len(self.producer) > limit:
            self.producer.poll(0.005)
            if time.monotonic() > deadline:
                raise Rollback("delivery timeout")

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None and self._delivery_error is None:
            self._delivery_error = err

    def _new_producer(self) -> None:
        conf = self.scfg.producer_conf(self.transactional_id)
        if not self.eos:
            # At-least-once needs to know every delivery failed or not; a transaction tells us itself.
            conf["on_delivery"] = self._on_delivery
        self.producer = Producer(conf)
        if self.eos:
            try:
                # Fences an older producer with our id and aborts its open transaction.
                self.producer.init_transactions(self.scfg.commit_timeout_s)
            except KafkaException as exc:
                raise FatalRuntimeError(f"init_transactions: {exc}") from exc
            log.info("transactional producer ready %s", kv(transactional_id=self.transactional_id))

    # -- cycle: begin / commit / rollback --

    def _begin(self) -> None:
        self._cycle_start = time.monotonic()
        if self.eos and not self._in_txn:
            try:
                self.producer.begin_transaction()
            except KafkaException as exc:
                raise self._fatal_or(exc, "begin") from exc
            self._in_txn = True

    def _write_changelog(self) -> None:
        for tp, st in self.states.items():
            dirty = st.dirty()
            if dirty:
                topic = changelog_topic(self.app_id, tp.topic)
                for k, v in dirty.items():
                    self._emit(topic, k, v, None, tp.partition)

    def _commit(self) -> None:
        """Commit the open cycle; raises Rollback (cycle undone by the caller) or FatalRuntimeError."""
        if not self._cycle_records and not self._in_txn:
            return
        # send_offsets, then commit attempts until a deadline (each up to the timeout); at-least-once:
        # drain (up to the timeout) and a synchronous offset commit.
        self.heartbeat.beat(grace_s=3 * self.scfg.commit_timeout_s)
        t0 = time.perf_counter()
        try:
            self.processor.before_commit(list(self.states))
        except Exception as exc:
            log.exception("processor before_commit raised %s", kv(group=self.cfg.group_id))
            raise Rollback("processor", exc) from exc
        try:
            self._write_changelog()
        except KafkaException as exc:
            raise Rollback("produce", exc) from exc
        offsets = self._positions()
        if self.eos:
            self._commit_eos(offsets)
        else:
            self._commit_alo(offsets)
        for st in self.states.values():
            st.merge()
        for tp in offsets:
            self.rewind_to[TP(tp.topic, tp.partition)] = tp.offset
        self._cycle_records = 0
        self._cycle_outputs = 0
        self._backoff.reset()
        self.metrics.commits.inc()
        self.metrics.commit.observe(time.perf_counter() - t0)

    def _commit_eos(self, offsets: list[TopicPartition]) -> None:
        p = self.producer
        timeout = self.scfg.commit_timeout_s
        try:
            if offsets:
                self._bounded.send_offsets(p, offsets, self.consumer.consumer_group_metadata(), timeout)
        except txn.Wedged as exc:  # abandoned: no abort on it, a new producer aborts what it left open
            self._replace_producer = True
            raise Rollback("send_offsets", exc) from exc
        except KafkaException as exc:
            raise self._fatal_or(exc, "send_offsets") from exc
        try:
            txn.commit(p, timeout, self.cfg.group_id)
        except KafkaException as exc:
            raise self._fatal_or(exc, "commit") from exc
        self._in_txn = False

    def _commit_alo(self, offsets: list[TopicPartition]) -> None:
        self._drain(0)
        if self._delivery_error is not None:
            raise Rollback("delivery", KafkaException(self._delivery_error))
        if offsets:
            try:
                self.consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as exc:
                # Outputs are delivered; the offsets stay behind: a restart re-processes (at least once).
                log.warning("offset commit failed %s", kv(group=self.cfg.group_id, error=exc))

    def _fatal_or(self, exc: KafkaException, what: str) -> Exception:
        err: KafkaError = exc.args[0]
        if txn.replaceable(err, what, self._fences):  # the rollback replaces the producer (runtime.txn)
            self._replace_producer = True
            return Rollback(what, exc)
        if err.fatal() or not (err.txn_requires_abort() or err.retriable()):
            self.fatal = FatalRuntimeError(f"{what}: {err}")
            return self.fatal
        return Rollback(what, exc)

    def _rollback(self, rb: Rollback, *, backoff_after: bool = True, leaving: list[TP] | None = None) -> None:
        """Undo the open cycle: abort, state back to the last commit, every partition to its offset."""
        self.metrics.abort(rb.reason)
        # Abort retries (2x the commit timeout) + a new producer's init_transactions, or a drain; backoff.
        timeout = self.scfg.commit_timeout_s
        self.heartbeat.beat(grace_s=3 * timeout + self.scfg.retry_cap_s)
        log.warning("rolling back %s", kv(group=self.cfg.group_id, reason=rb, records=self._cycle_records))
        if self.eos:
            if self._in_txn and not self._replace_producer:  # raises FatalRuntimeError if it cannot
                deadline = time.monotonic() + 2 * timeout
                self._replace_producer = not txn.abort(self.producer, timeout, deadline, self._fences)
            if self._replace_producer:
                log.warning("transactional producer unusable: replacing it %s", kv(reason=rb))
                self.metrics.producer_replacements.inc()  # the cycle's abort is counted above
                self._new_producer()  # its init_transactions aborts what the old one left open
                self._replace_producer = False
            self._in_txn = False
        else:
            # Undelivered outputs of the cycle are dropped from the queue; the records come again.
            self.producer.purge(in_queue=True, in_flight=False)
            self.producer.poll(0)
            self._drain(0)
            self._delivery_error = None
        for st in self.states.values():
            st.discard()
        self.processor.on_reset(list(self.states), "abort")
        gone = set(leaving or ())
        self._rewind({tp: off for tp, off in self.rewind_to.items() if tp not in gone})
        self._cycle_records = 0
        self._cycle_outputs = 0
        if backoff_after:
            self._sleep(self._backoff.next_delay())

    # -- rebalance hooks --

    def _on_assign(self, consumer: Any, parts: list[TopicPartition]) -> None:
        # Runs inside consume(): stable offsets may wait out a dead owner's transaction, then the restore.
        # Our open cycle is committed first, as on revoke: held across that wait it would time out too.
        if parts:
            self._end_cycle([])
        self.heartbeat.beat(grace_s=_COMMITTED_S + self.scfg.restore_timeout_s)
        super()._on_assign(consumer, parts)

    def _assigned(self, tps: list[TP]) -> None:
        restored: dict[Any, dict[bytes, bytes]] = {}
        if self.scfg.stateful:
            # A fresh client each time: one kept idle between rebalances got "Unknown partition" for a
            # changelog partition after a broker restart, until the restore timed out (compose scale-out
            # test; stale client state suspected, not reproduced alone). A new client costs milliseconds.
            restorer = Consumer(self.scfg.restore_conf())
            try:
                restored = restore(restorer, self.app_id, list(tps), self.scfg.restore_timeout_s)
            except Exception as exc:
                self.fatal = FatalRuntimeError(f"restore {tps}: {exc}")
                raise self.fatal from exc
            finally:
                restorer.close()
        for tp in tps:
            st = PartitionState(restored.get(tp, {})) if self.scfg.stateful else PartitionState.detached()
            self.states[tp] = st
            self.processor.on_assign(tp, st)

    def _revoking(self, tps: list[TP]) -> None:
        self._end_cycle(tps)  # before the partitions go: the next owner starts from what is committed
        self._drop(tps, "revoke")

    def _end_cycle(self, leaving: list[TP]) -> None:
        """Commit the open cycle, or roll it back (no backoff; ``leaving`` is not rewound)."""
        if self.fatal is None and (self._cycle_records or self._in_txn):
            try:
                self._commit()
            except Rollback as rb:
                self._rollback(rb, backoff_after=False, leaving=leaving)

    def _lost(self, tps: list[TP]) -> None:
        # Someone else may own them already: nothing of this cycle may be committed.
        if self.fatal is None and (self._cycle_records or self._in_txn):
            self._rollback(Rollback("lost"), backoff_after=False, leaving=tps)
        self._drop(tps, "lost")

    def _drop(self, tps: list[TP], reason: str) -> None:
        for tp in tps:
            self.states.pop(tp, None)
        self.processor.on_reset(tps, reason)

    # -- stop --

    def _shutdown(self) -> None:
        if self.fatal is not None and self.producer is not None:
            self.producer.purge()
        self._close_consumer()
        if self.producer is not None and self.fatal is None:
            self.producer.flush(self.scfg.commit_timeout_s)
        self.producer = None
        self.heartbeat.close()
