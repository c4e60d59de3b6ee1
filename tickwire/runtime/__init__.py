"""tickwire's one stream runtime: consumer-group workers on confluent-kafka (librdkafka), public API only.

Two worker kinds share one consumer-group core (batch ``consume()``, ``cooperative-sticky`` assignment,
state restored on assign before a partition's first record is processed, commit-or-abort on revoke,
a commit cadence by time *and* count, a bounded in-flight window, graceful stop on SIGTERM/SIGINT,
Prometheus metrics). Vendor-neutral: nothing here knows a vendor, a canonical record or a bridge.

Transform workers (``StreamWorker``) — Kafka in, Kafka out (the normalizer)
-----------------------------------------------------------------------------
::

    from tickwire.runtime import TP, Context, Message, PartitionState, Processor, StreamConfig, StreamWorker

    class Upper(Processor):                      # subclass or any object with these methods
        def process(self, msg: Message, ctx: Context) -> None:
            st = ctx.state                       # PartitionState of msg's input partition
            n = int(st.get(b"count") or b"0") + 1
            st.put(b"count", str(n).encode())    # dirty until the commit; discarded on abort
            ctx.emit("out", msg.key(), (msg.value() or b"").upper(), headers=[("n", str(n).encode())])

        def on_assign(self, tp: TP, state: PartitionState) -> None: ...  # state restored
        def before_commit(self, tps: list[TP]) -> None: ...  # write caches into their state now
        def on_reset(self, tps: list[TP], reason: str) -> None: ...
            # revoke/lost/abort: drop every in-memory cache derived from these partitions; their
            # PartitionState is back at the last committed state (or gone, on revoke).

    cfg = StreamConfig(bootstrap_servers="127.0.0.1:19092", group_id="g", topics=["in"],
                       app_id="g", guarantee="exactly_once", stateful=True)
    worker = StreamWorker(cfg, Upper())
    worker.run()          # blocks; returns 0 after stop()/SIGTERM, raises FatalRuntimeError otherwise

* ``ctx.emit(topic, key, value, headers=None, partition=None)`` produces *now* (librdkafka queue,
  ``linger.ms`` <= 1): outputs are never held until the commit; the commit interval bounds when
  ``read_committed`` readers see them, not when they are appended. ``partition=None`` = the producer's
  ``murmur2_random`` partitioner (Java-compatible key hashing).
* ``guarantee="exactly_once"`` (KIP-447): ONE transactional producer per worker; input read
  ``read_committed``; every ``commit_interval_ms`` or ``commit_max_records`` input records the worker
  writes the dirty state to the changelog, ``send_offsets_to_transaction(consumer.position(assignment),
  consumer.consumer_group_metadata())`` and ``commit_transaction()``. On ANY error (a failed produce or
  delivery, an abortable/retriable-exhausted commit, a processor exception) and on revoke/lost: abort,
  roll every partition's state back to its last committed state (``on_reset`` tells the processor), and
  seek every assigned partition back to its committed offset — nothing is lost or duplicated by
  construction. Fatal producer errors (fenced, epoch lost) raise ``FatalRuntimeError``: the process exits
  non-zero and its supervisor restarts it (a fresh process restores from the changelog: the simplest
  state that is right by construction). Give each worker slot a stable ``instance_id`` so a restarted
  worker's ``init_transactions`` aborts its predecessor's open transaction at once (otherwise that waits
  for ``transaction_timeout_ms``).
* ``guarantee="at_least_once"``: no transactions; outputs and changelog records are produced as made,
  the offsets are committed only after ``flush()`` confirmed every delivery. A delivery error rolls back
  and rewinds exactly like an abort (outputs already delivered are published again: at least once).
* ``Processor.process`` must not raise for bad *input*: turn it into output (a DLQ record). A raise is
  treated as a transient fault (abort, roll back, rewind, ``Backoff`` delay, retry) — never a skip.

State (``stateful=True``)
-------------------------
One ``PartitionState`` per assigned input partition: a bytes -> bytes store with a transactional overlay
(``get``/``put``/``delete``/``items(prefix=b"")``; dirty writes are visible to the processor at once,
merged on commit, discarded on abort). Backed by one compacted changelog topic per input topic,
``changelog_topic(app_id, input_topic)`` = ``"{app_id}-{input_topic}-changelog"``, with the input's
partition count (created by the runtime when missing; a count mismatch is an error); changelog partition
= input partition, so keys carry their partition explicitly by where they live — no key prefixes to
parse. Changelog records (latest value per dirty key, tombstone for a delete) go into the same transaction
as the outputs and offsets. Restored on assign (read ``read_committed`` to the end) before processing.

Sink workers (``SinkWorker``) — Kafka in, an external system out (the bridges)
------------------------------------------------------------------------------
::

    from tickwire.runtime import SinkConfig, SinkWorker

    async def write(batch: list[Message]) -> None:
        ...                          # write to Redis/NATS; raise on an outage: retried, never skipped

    SinkWorker(SinkConfig(bootstrap_servers=..., group_id="redis-bridge", topics=(...)), write,
               on_start=connect, on_stop=close, on_assign=reset).run()

* Reads ``read_uncommitted`` by default (the bridges' live path: no wait for the normalizer's
  commits; writers are idempotent by record identity).
* Batches without waiting: the first record is awaited, then whatever else is already fetched is taken
  up to ``batch_max`` — an idle sink writes a lone record at once, a busy one big batches.
* Offsets are stored only after the handler returned and committed every ``commit_interval_s``, before
  a revoke and at stop. A failing handler is retried on the same records with ``Backoff`` delays while
  the partitions are paused (membership stays alive); one event loop lives as long as the worker, so
  async clients and background tasks keep running between batches.
* Assignment ``range``: with equal partition counts, partition ``i`` of every input topic goes to one
  member, so a symbol's trades, quotes and book meet in one process.

Common
------
* ``StreamConfig``/``SinkConfig`` are frozen pydantic models rejecting unknown keys; a process's own
  settings class (``tickwire.settings.ProcessSettings``) builds them. ``kafka_client`` holds extra
  librdkafka settings applied to every client (security etc.), the same for every process.
* ``worker.stop()`` (thread-safe, also wired to SIGTERM/SIGINT by ``install_signal_handlers(worker)``):
  finish the batch, final commit, leave the group, close clients.
* Metrics (prometheus-client, default registry, labels ``group``): ``tickwire_runtime_lag`` (per
  topic/partition), ``_batch_size``, ``_commit_seconds``, ``_rebalances_total{kind}``,
  ``_aborts_total{reason}``, ``_records_in_total``, ``_records_out_total``, ``_commits_total``,
  ``_producer_replacements_total``.
* Retries (rolled-back cycles, failed sink writes) wait ``tickwire.backoff.Backoff`` delays, reset by
  the next successful commit.
"""

from __future__ import annotations

from tickwire.backoff import Backoff
from tickwire.runtime.config import StreamConfig
from tickwire.runtime.errors import FatalRuntimeError, RetryableError
from tickwire.runtime.lifecycle import install_signal_handlers
from tickwire.runtime.processor import TP, Context, Message, Processor
from tickwire.runtime.sink import SinkConfig, SinkWorker
from tickwire.runtime.state import PartitionState, changelog_topic
from tickwire.runtime.worker import StreamWorker

__all__ = [
    "TP",
    "Backoff",
    "Context",
    "FatalRuntimeError",
    "Message",
    "PartitionState",
    "Processor",
    "RetryableError",
    "SinkConfig",
    "SinkWorker",
    "StreamConfig",
    "StreamWorker",
    "changelog_topic",
    "install_signal_handlers",
]
