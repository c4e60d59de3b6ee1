"""`tickwire parse --source VENDOR [FILE|-]`: offline normalization, the live normalizer's per-message path.

Input (auto-detected):
- a recorded session (``URL <-> T`` opens a connection; ``URL <- T: P`` sent, skipped; ``T: P`` received,
  ``ts_recv`` = T taken exactly from the text; ``URL -> T: P`` a REST answer, fed as stream
  ``rest.<last path segment>[?query]``; other lines such as ``configuration: ...`` are skipped);
- a DBN file (``.dbn`` / ``.dbn.zst``, or DBN/zstd magic): chunked into raw messages per the databento
  raw contract (file metadata + ``--batch`` records each);
- ``--content-type msgpack``: concatenated MessagePack frames;
- otherwise one raw payload per line.

Envelopes are synthesized: stream from ``--stream``, else the parser's ``stream_for_url(url)`` hook,
else ``ws``; session ``--session`` (fixed); seq = payload counter from 1; ts_recv from the recording,
else the current time.

Output: one JSON line per record on stdout, ``{"topic", "key", "schema", "value"}`` (value from
``to_json_dict``), gaps included (topic tickwire.gaps). Rejected payloads go to stderr as
``{"error", "class", "line"}``. Exit status: 0 when every payload parsed, 1 when any was rejected,
2 on usage errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from tickwire import recording, vendors
from tickwire.contract.codec import Codec, to_json_dict
from tickwire.contract.envelope import CONTENT_TYPES, H_ERROR_MESSAGE, Envelope
from tickwire.contract.errors import classify
from tickwire.normalize.config import NormalizerSettings
from tickwire.normalize.pipeline import Pipeline, RawMessage, build_pipeline
from tickwire.normalize.validate import UNBOUNDED_BEHIND_NS, TimeWindow
from tickwire.vendors import UnknownVendorError, get_parser

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Item = tuple[int, bytes, str | None, int | None]  # (line number, payload, stream or None, ts_recv or None)


def rest_stream(url: str) -> str:
    path, _, query = url.partition("?")
    last = path.rstrip("/").rsplit("/", 1)[-1]
    return f"rest.{last}" + (f"?{query}" if query else "")


def recorded_items(lines: Iterable[bytes], ws_stream: Any) -> Iterator[Item]:
    """Payloads of a recorded session; ``ws_stream(url)`` names the stream of a WebSocket URL."""
    for e in recording.events(lines):
        if e.kind == "recv":
            yield e.line, e.payload, ws_stream(e.url), e.ts_ns
        elif e.kind == "rest":
            yield e.line, e.payload, rest_stream(e.url), e.ts_ns


def dbn_items(data: bytes, batch: int) -> Iterator[Item]:
    import databento_dbn as dbn

    # The stubs type enum members as their values; they are real members at run time.
    comp = cast(dbn.Compression, dbn.Compression.ZSTD if data[:4] == ZSTD_MAGIC else dbn.Compression.NONE)
    as_is = cast(dbn.VersionUpgradePolicy, dbn.VersionUpgradePolicy.AS_IS)
    dec = dbn.DBNDecoder(compression=comp, upgrade_policy=as_is)
    try:
        dec.write(data)
        recs = dec.decode()
    except BaseException as exc:  # a native decoder panics (BaseException) on a corrupt record
        if classify(exc) == "exit":
            raise
        # Not splittable: the whole file is one raw record, and the pipeline reports why it is bad.
        yield 1, data, "dbn.file", None
        return
    if not recs or not isinstance(recs[0], dbn.Metadata):
        raise ValueError("not a DBN stream (no metadata)")
    meta = recs[0].encode()
    body = [bytes(r) for r in recs[1:]]
    for k, i in enumerate(range(0, len(body), batch)):
        yield k + 1, meta + b"".join(body[i : i + batch]), "dbn.file", None


def _items(args: argparse.Namespace, parser: Any, fh: IO[bytes]) -> Iterator[Item]:
    name = "" if args.file in (None, "-") else args.file
    data = fh.read()
    fixed = args.stream
    hook = getattr(parser, "stream_for_url", None)

    def ws_stream(url: str) -> str:
        return fixed or (hook(url) if hook else None) or "ws"

    if name.endswith((".dbn", ".dbn.zst")) or data[:3] == b"DBN" or data[:4] == ZSTD_MAGIC:
        yield from dbn_items(data, args.batch)
        return
    if args.content_type == "msgpack":
        import msgpack

        # Slice the original bytes between frame offsets: payloads stay byte-exact.
        unpacker = msgpack.Unpacker(raw=False, timestamp=0, strict_map_key=False)
        unpacker.feed(data)
        start = 0
        for n, _frame in enumerate(unpacker, 1):
            end = unpacker.tell()
            yield n, data[start:end], fixed, None
            start = end
        return
    lines = data.splitlines()
    if recording.is_recorded(next((ln for ln in lines if ln.strip()), b"")):
        yield from recorded_items(lines, ws_stream)
        return
    for n, ln in enumerate(lines, 1):
        if ln.strip():
            yield n, ln, fixed, None


def _emit(topic: str, key: bytes | None, rec: Any, out: IO[str]) -> None:
    value = to_json_dict(rec)
    doc = {"topic": topic, "key": (key or b"").decode(), "schema": value["schema"], "value": value}
    out.write(json.dumps(doc, separators=(",", ":")) + "\n")


def offline_pipeline(codec: Codec) -> Pipeline:
    """The normalizer's per-message core with the live normalizer's settings, over an in-memory store.

    One difference: a file's records may be of any age. Inputs without a recorded receive time get the
    current time as their clock, so event times are checked against it in the ahead direction only."""
    pipe = build_pipeline(NormalizerSettings.load(), codec)
    pipe.checks.window = TimeWindow(pipe.checks.window.ahead_ns, UNBOUNDED_BEHIND_NS)
    return pipe


def raw_records(args: argparse.Namespace, fh: IO[bytes]) -> Iterator[tuple[int, bytes, Envelope]]:
    """(line, payload, envelope) of each raw record the input stands for, in order: what a producer
    would have put on ``<source>.raw`` (one partition)."""
    spec = vendors.spec(args.source)
    content_type = args.content_type or spec.content_type
    for seq, (line, payload, stream, ts_recv) in enumerate(_items(args, get_parser(args.source), fh), 1):
        env = Envelope(
            source=args.source,
            stream=stream or args.stream or "ws",
            session=args.session,
            seq=seq,
            ts_recv=ts_recv if ts_recv is not None else time.time_ns(),
            content_type="dbn" if payload[:3] == b"DBN" else content_type,
        )
        yield line, payload, env


def run(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    """Every payload through ``Pipeline.process`` (validation, crossed flag, dedupe, bars, DLQ) as one
    partition of ``<source>.raw``: the records the live normalizer publishes for the same raw records."""
    try:
        spec = vendors.spec(args.source)
        get_parser(args.source)
    except (UnknownVendorError, ImportError) as exc:
        err.write(f"tickwire parse: {exc}\n")
        return 2
    codec = Codec(None)
    pipe = offline_pipeline(codec)
    rejected = 0
    fh: IO[bytes] = sys.stdin.buffer if args.file in (None, "-") else Path(args.file).open("rb")  # noqa: SIM115
    try:
        for seq, (line, payload, env) in enumerate(raw_records(args, fh), 1):
            msg = RawMessage(spec.raw_topic, 0, seq - 1, None, payload, env.to_headers())
            res = pipe.process(msg)
            if res.status == "dlq":
                rejected += 1
                dlq = next(o for o in res.outputs if o.headers is not None)
                reason = dict(dlq.headers or ()).get(H_ERROR_MESSAGE, b"").decode(errors="replace")
                err.write(json.dumps({"error": reason, "class": res.error_class, "line": line}) + "\n")
            for o in res.outputs:
                if o.headers is None:  # canonical records and gaps; the DLQ copy was reported above
                    _emit(o.topic, o.key, codec.decode(o.value), out)
    finally:
        if fh is not sys.stdin.buffer:
            fh.close()
    return 1 if rejected else 0


def build_argparser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tickwire parse", description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help=f"vendor id: {', '.join(vendors.names())}")
    ap.add_argument("file", nargs="?", default="-", help="input file, or - for stdin (default)")
    ap.add_argument("--stream", help="stream id for the envelopes (default: from the recording's URL)")
    ap.add_argument("--content-type", choices=sorted(CONTENT_TYPES), help="payload type")
    ap.add_argument("--session", type=int, default=1, help="envelope session id (default 1)")
    ap.add_argument("--batch", type=int, default=100, help="DBN records per raw message (default 100)")
    return ap


def main(argv: list[str]) -> int:
    args = build_argparser().parse_args(argv)
    try:
        return run(args, sys.stdout, sys.stderr)
    except BrokenPipeError:
        return 0
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"tickwire parse: {exc}\n")
        return 2
