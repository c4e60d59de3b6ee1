"""`tickwire replay`: `replay offsets ...` resets consumer-group offsets; a vendor target (e.g. `replay dbn`)
publishes that vendor's files to its raw topic. Each target is imported only when chosen."""

from __future__ import annotations

import importlib
import logging
import sys

from tickwire import vendors
from tickwire.contract.adapter import RawSink
from tickwire.logs import kv

log = logging.getLogger(__name__)


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

    sinks: list[RawProducer] = []

    def make_sink(bootstrap: str, client_id: str, queue_max_kbytes: int) -> RawSink:
        sinks.append(RawProducer(bootstrap, client_id=client_id, queue_max_kbytes=queue_max_kbytes))
        return sinks[-1]

    # A fatal producer error ends the replay as it ends a live producer: ``produce`` raises it (the
    # target's own ``finally`` flushes), or it arrived during the last polls/flush; either way exit 4.
    try:
        rc = module.main(rest, make_sink)
        for sink in sinks:
            sink.check_fatal()
    except FatalProducerError as exc:
        log.error("fatal producer error, stopping %s", kv(target=name, error=exc))
        print(f"tickwire replay {name}: stopped on a fatal producer error (see log)", file=sys.stderr)
        return EXIT_FATAL
    return rc
