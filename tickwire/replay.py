"""`tickwire replay`: `replay offsets ...` resets consumer-group offsets; a vendor target (e.g. `replay dbn`)
publishes that vendor's files to its raw topic. Each target is imported only when chosen.

A file replay keeps session markers as the live producers do (``tickwire.ingest.sessions``): its sink
starts the marker of each (source, stream) at that stream's first raw record, since only the envelope
headers name the source, stream and session. A start after a session that did not stop cleanly publishes
its Gap, unless the new session has the same id (the same file set: it re-publishes the same seqs, which
the normalizer dedupes, so it covers whatever the crash lost). Exit 0 (end of files or a signal, with
nothing left unflushed) marks the session ``stopped``; exit 1 or 4 does not. Markers and gaps live beside
the raw topic (``<prefix><source>.raw`` -> ``<prefix>tickwire.sessions``); for a raw topic of another
name, which no normalizer reads, they are off. No end-of-session raw marker: it would take the seq after
the last published one, which a re-run of the same files gives to a data message, and the normalizer
would drop that message as a duplicate (the marker only closes vendor bar rollups, none of a replay's).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tickwire import vendors
from tickwire.contract.adapter import RawSink
from tickwire.contract.envelope import H_SEQ, H_SESSION, H_SOURCE, H_STREAM
from tickwire.contract.records import Gap
from tickwire.ingest.sessions import SESSIONS_TOPIC, SessionMarker
from tickwire.logs import kv

if TYPE_CHECKING:
    from tickwire.ingest.producer import RawProducer

log = logging.getLogger(__name__)


class MarkedSink:
    """A replay target's sink: the producer, plus the session marker of every stream it publishes."""

    def __init__(self, producer: RawProducer, bootstrap: str) -> None:
        self.producer, self.bootstrap = producer, bootstrap
        self.codec: Any = None  # built with the first marker: a replay without markers never needs it
        self.markers: dict[tuple[str, str], SessionMarker | None] = {}  # None: markers off
        self.last_seq: dict[tuple[str, str], int] = {}

    def produce(
        self,
        topic: str,
        value: bytes,
        key: bytes | None,
        headers: Sequence[tuple[str, bytes]],
        *,
        stream: str | None = None,
        partition: int | None = None,
    ) -> bool:
        h = dict(headers)
        src, strm, session, seq = h.get(H_SOURCE), h.get(H_STREAM), h.get(H_SESSION), h.get(H_SEQ)
        if src and strm and session and seq:
            sk = (src.decode(), strm.decode())
            if sk not in self.markers:  # before the stream's first record is queued
                self.markers[sk] = self._start(topic, *sk, int(session))
            self.last_seq[sk] = max(int(seq), self.last_seq.get(sk, 0))
        return self.producer.produce(topic, value, key, headers, stream=stream, partition=partition)

    def poll(self, timeout: float = 0.0) -> int:
        return self.producer.poll(timeout)

    def flush(self, timeout: float = 30.0) -> int:
        return self.producer.flush(timeout)

    def _start(self, raw_topic: str, source: str, stream: str, session: int) -> SessionMarker | None:
        if not raw_topic.endswith(f"{source}.raw"):
            log.info("session markers off: not a pipeline raw topic %s", kv(topic=raw_topic, stream=stream))
            return None
        prefix = raw_topic[: -len(f"{source}.raw")]
        if self.codec is None:
            # Local: fastavro and the registry client stay out of `replay offsets` and marker-less replays.
            from tickwire.contract.codec import Codec

            self.codec = Codec(os.environ.get("SCHEMA_REGISTRY_URL") or None)

        def gap(last_seq: int | None, ts_start: int, detail: str) -> None:
            rec = Gap(
                source=source, stream=stream, reason="dropped", detected_by="producer",
                last_seq_before=last_seq, first_seq_after=None, ts_start=ts_start, ts_end=time.time_ns(),
                detail=detail,
            )  # fmt: skip
            self.producer.produce(
                f"{prefix}tickwire.gaps", self.codec.encode(rec), stream.encode(), [], stream="gaps"
            )

        marker = SessionMarker(
            self.producer, self.bootstrap, topic=f"{prefix}{SESSIONS_TOPIC}", raw_topic=raw_topic,
            source=source, stream=stream, session=session, encode=self.codec.encode, decode=self.codec.decode,
        )  # fmt: skip
        prev = marker.start(gap)
        if prev is not None and prev.status != "stopped" and prev.session == session:
            log.info(
                "previous run of the same files did not stop cleanly: this run re-publishes its seqs %s",
                kv(stream=stream, session=session),
            )
        return marker

    def stop(self) -> None:
        """After a clean end (everything flushed): mark every stream's session stopped."""
        for sk, marker in self.markers.items():
            if marker is not None:
                marker.stop(self.last_seq.get(sk))


def _targets() -> dict[str, tuple[str, str]]:
    """``offsets`` plus each vendor's file replay (its registry row's ``replay``)."""
    out = {"offsets": ("tickwire.offsets", "reset a consumer group's offsets (re-process a time range)")}
    for spec in vendors.with_("replay"):
        target, module = spec.replay or ("", "")
        out[target] = (module, f"publish {spec.name} files to {spec.raw_topic}, merged and paced")
    return out


def _usage() -> str:
    lines = [f"usage: tickwire replay {{{','.join(sorted(_targets()))}}} [ARGS...]", "", "targets:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in _targets().items()]
    lines += ["", "Run `tickwire replay TARGET --help` for a target's options."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in _targets():
        print(f"tickwire replay: unknown target {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(_targets()[name][0])
    if name == "offsets":
        rc: int = module.main(rest)
        return rc
    from tickwire.ingest.producer import EXIT_FATAL, FatalProducerError, RawProducer

    sinks: list[MarkedSink] = []

    def make_sink(bootstrap: str, client_id: str, queue_max_kbytes: int) -> RawSink:
        producer = RawProducer(bootstrap, client_id=client_id, queue_max_kbytes=queue_max_kbytes)
        sinks.append(MarkedSink(producer, bootstrap))
        return sinks[-1]

    # A fatal producer error ends the replay as it ends a live producer: ``produce`` raises it (the
    # target's own ``finally`` flushes), or it arrived during the last polls/flush; either way exit 4.
    try:
        rc = module.main(rest, make_sink)
        for sink in sinks:
            sink.producer.check_fatal()
        if rc == 0:  # the target's exit 0: done or signalled, nothing left unflushed
            for sink in sinks:
                sink.stop()
    except FatalProducerError as exc:
        log.error("fatal producer error, stopping %s", kv(target=name, error=exc))
        print(f"tickwire replay {name}: stopped on a fatal producer error (see log)", file=sys.stderr)
        return EXIT_FATAL
    return rc
