"""The real ``tickwire normalize`` / ``tickwire bridge redis`` with a loop that can be wedged, for the
liveness tests (tests/integration/test_liveness_wedge.py).

``python -m tests.integration.liveness_wedge normalize|bridge <the command's usual options>`` runs the
command's own ``main`` (settings, health registration, /healthz server, worker loop) with one test-only
change: a record whose value is exactly ``WEDGE`` makes the processor (normalizer) or the batch handler
(bridge) wait forever on an event nobody sets. That is a real wedge of the main loop — the process, its
HTTP thread and (bridge) its event loop keep running, only the loop never comes back — unlike SIGSTOP,
which would freeze the HTTP thread too.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

WEDGE = b"WEDGE"


def normalize(argv: list[str]) -> int:
    from tickwire.normalize import app
    from tickwire.runtime import Context, Message

    class Wedging(app.NormalizeProcessor):
        def process(self, msg: Message, ctx: Context) -> None:
            if msg.value() == WEDGE:
                print("WEDGED", file=sys.stderr, flush=True)
                threading.Event().wait()  # a deadlock: never set
            super().process(msg, ctx)

    app.NormalizeProcessor = Wedging  # type: ignore[misc]  # main() builds its processor by this name
    return app.main(argv)


def bridge(argv: list[str]) -> int:
    from tickwire.bridges import cli, redis_bridge

    build = redis_bridge.build

    def wedging_build(s: Any) -> Any:
        sink = build(s)
        inner = sink.handler

        async def handler(batch: list[Any]) -> None:
            if any(m.value() == WEDGE for m in batch):
                print("WEDGED", file=sys.stderr, flush=True)
                await asyncio.Event().wait()  # an await without a timeout that never completes
            await inner(batch)

        sink.handler = handler
        return sink

    redis_bridge.build = wedging_build  # cli.main looks build up on the module at call time
    return cli.main(["redis", *argv])


if __name__ == "__main__":
    role, rest = sys.argv[1], sys.argv[2:]
    sys.exit(normalize(rest) if role == "normalize" else bridge(rest))
