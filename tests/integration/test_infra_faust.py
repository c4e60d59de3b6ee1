"""faust-streaming smoke on the real broker: an agent with a Table (forces changelog topic creation).

The worker runs in its own process (this file, run as a script) as it would in production; the test
talks to it only through Kafka. Also run by `make test-kafka-alt` against the other Kafka version.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _worker() -> None:
    import faust

    bootstrap, app_id, src_name, out_name, datadir = sys.argv[1:6]
    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        topic_replication_factor=1,
        topic_partitions=2,
        broker_commit_every=10,
    )
    src = app.topic(src_name, key_serializer="raw", value_serializer="raw", partitions=2)
    out = app.topic(out_name, key_serializer="raw", value_serializer="raw", partitions=2)
    totals = app.Table("totals", default=int, partitions=2)

    @app.agent(src)
    async def add(stream: faust.StreamT[bytes]) -> None:
        async for key, value in stream.items():
            k = key.decode()
            totals[k] += int(value)
            await out.send(key=key, value=f"{k}={totals[k]}".encode())

    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    _worker()
    sys.exit(0)


from confluent_kafka import Consumer, Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType  # noqa: E402

from tests.helpers import unique_name, wait_for  # noqa: E402

pytestmark = pytest.mark.integration


def test_faust_agent_with_table(
    kafka_bootstrap: str, unique_topic: Callable[[str], str], tmp_path: Path
) -> None:
    app_id = unique_name("faust-smoke")
    src, out = unique_topic("faust-in"), unique_topic("faust-out")
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for fut in admin.create_topics(
        [NewTopic(t, num_partitions=2, replication_factor=1) for t in (src, out)]
    ).values():
        fut.result(timeout=30)

    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, __file__, kafka_bootstrap, app_id, src, out, str(tmp_path / "data")],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, PYTHONPATH=str(ROOT)),
    )
    changelog = f"{app_id}-totals-changelog"
    try:
        p = Producer({"bootstrap.servers": kafka_bootstrap})
        sent = [("AAPL", 1), ("MSFT", 10), ("AAPL", 2), ("MSFT", 20), ("AAPL", 3), ("BTC-USD", 7)]
        for k, v in sent:
            p.produce(src, str(v).encode(), key=k.encode())
        assert p.flush(30) == 0

        c = Consumer(
            {
                "bootstrap.servers": kafka_bootstrap,
                "group.id": unique_name("g"),
                "auto.offset.reset": "earliest",
            }
        )
        c.subscribe([out])
        latest: dict[str, str] = {}

        def done() -> bool:
            assert proc.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
            msg = c.poll(0.2)
            if msg is not None and msg.error() is None:
                k, v = msg.value().decode().split("=")
                latest[k] = v
            return latest == {"AAPL": "6", "MSFT": "30", "BTC-USD": "7"}

        wait_for(done, timeout=90, interval=0, what="faust totals")
        c.close()

        md = admin.list_topics(timeout=10)
        assert changelog in md.topics and len(md.topics[changelog].partitions) == 2
        res = ConfigResource(ResourceType.TOPIC, changelog)
        assert admin.describe_configs([res])[res].result(timeout=10)["cleanup.policy"].value == "compact"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(app_id) or t in (src, out)]
        for fut in admin.delete_topics(mine).values():
            fut.result(timeout=30)
