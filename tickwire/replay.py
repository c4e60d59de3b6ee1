"""`tickwire replay`: `replay dbn ...` publishes DBN files to databento.raw; `replay offsets ...` resets
consumer-group offsets. Each target is imported only when chosen."""

from __future__ import annotations

import importlib
import sys

TARGETS: dict[str, tuple[str, str]] = {
    "dbn": ("ingest.replay_dbn", "publish .dbn/.dbn.zst files to databento.raw, merged by ts_recv, paced"),
    "offsets": ("tickwire.offsets", "reset a consumer group's offsets (re-process a time range)"),
}


def _usage() -> str:
    lines = ["usage: tickwire replay {dbn,offsets} [ARGS...]", "", "targets:"]
    lines += [f"  {name:<10} {help_}" for name, (_, help_) in TARGETS.items()]
    lines += ["", "Run `tickwire replay TARGET --help` for a target's options."]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in TARGETS:
        print(f"tickwire replay: unknown target {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(TARGETS[name][0])
    rc: int = module.main(rest)
    return rc
