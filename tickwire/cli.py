"""The `tickwire` console command: a thin dispatcher to each subsystem's own argparse entry point.

Each subcommand lives in its own module exposing ``main(argv: list[str]) -> int`` so subsystems stay
independent and imports stay lazy (a producer never imports the normalizer's codecs or the bridges' clients).
"""

from __future__ import annotations

import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    "infra": ("tickwire.infra.cli", "start/stop/status of the local Kafka, Redis, NATS"),
    "topics": ("tickwire.topic_admin", "apply/check topics.yaml against a Kafka cluster"),
    "simulate": ("tickwire.simulators.cli", "run a vendor simulator speaking the vendor's wire protocol"),
    "ingest": ("tickwire.ingest.cli", "run a vendor producer: vendor payloads -> <vendor>.raw"),
    "subscriptions": (
        "tickwire.ingest.subscriptions",
        "add/remove/list desired subscriptions (control topic)",
    ),
    "replay": ("tickwire.replay", "replay vendor files to their raw topics, or reset consumer offsets"),
    "normalize": ("tickwire.normalize.app", "run the normalizer: *.raw -> Avro canonical topics"),
    "parse": ("tickwire.normalize.parse_cli", "offline normalization of raw payloads to canonical JSON"),
    "tail": ("tickwire.tail", "decode a canonical topic to JSON"),
    "bridge": ("tickwire.bridges.cli", "run a bridge: canonical topics -> Redis or NATS JetStream"),
    "run": ("tickwire.run", "run the whole pipeline under a supervisor with a live view"),
    "bench": ("tickwire.bench.cli", "run the benchmark scenarios and write JSON results"),
}


def _usage() -> str:
    lines = ["usage: tickwire COMMAND [ARGS...]", "", "commands:"]
    lines += [f"  {name:<14} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run `tickwire COMMAND --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    if args[0] == "--version":
        from tickwire import __version__

        print(__version__)
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"tickwire: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        rc: int = module.main(rest)
    except BrokenPipeError:  # `tickwire tail ... | head`: the reader left; not an error
        sys.stderr.close()
        return 0
    return rc


if __name__ == "__main__":
    sys.exit(main())
