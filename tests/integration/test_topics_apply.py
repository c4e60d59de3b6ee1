"""`tickwire topics apply/check` against the real broker, on a unique prefix."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from tests.helpers import unique_name, wait_for
from tickwire import topic_admin, topics

pytestmark = pytest.mark.integration


@pytest.fixture
def prefix(kafka_bootstrap: str) -> Iterator[str]:
    p = unique_name("test") + "."
    yield p
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    mine = [t for t in admin.list_topics(timeout=10).topics if t.startswith(p)]
    if mine:
        for fut in admin.delete_topics(mine).values():
            fut.result(timeout=30)


def _visible(admin: AdminClient, name: str, partitions: int) -> None:
    def ok() -> bool:
        # All topics, not list_topics(name): a metadata request naming a topic may auto-create it.
        t = admin.list_topics(timeout=5).topics.get(name)
        return t is not None and t.error is None and len(t.partitions) == partitions

    wait_for(ok, timeout=15, what=f"{name} in metadata")


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    rc = topic_admin.main(list(argv))
    out = capsys.readouterr()
    return rc, out.out + out.err


def test_apply_is_idempotent_and_check_finds_drift(
    kafka_bootstrap: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    specs = topics.load_topics()
    args = ("--bootstrap", kafka_bootstrap, "--prefix", prefix)
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    # A pre-existing topic with too few partitions is grown, not recreated.
    raw = next(s for s in specs if s.name.endswith(".raw"))
    for fut in admin.create_topics(
        [NewTopic(prefix + raw.name, num_partitions=1, replication_factor=1)]
    ).values():
        fut.result(timeout=30)
    _visible(admin, prefix + raw.name, 1)

    rc, out = _run(capsys, "check", *args)
    assert rc == 1 and f"{len(specs)} topics checked" in out

    rc, out = _run(capsys, "apply", *args)
    assert rc == 0, out
    assert out.count("create ") == len(specs) - 1
    assert f"partitions  {prefix}{raw.name}: 1 -> {raw.partitions}" in out
    assert f"{len(specs)} change(s) applied" in out

    for s in specs:
        _visible(admin, prefix + s.name, s.partitions)
    control = next(s for s in specs if s.name == "control.subscriptions")
    res = ConfigResource(ResourceType.TOPIC, prefix + control.name)
    entries = admin.describe_configs([res])[res].result(timeout=10)
    assert entries["cleanup.policy"].value == "compact"
    assert entries["retention.ms"].value == "-1"

    rc, out = _run(capsys, "apply", *args)
    assert (
        rc == 0
        and f"0 change(s) applied on {kafka_bootstrap}, {len(specs)} topic(s) already up to date" in out
    )
    rc, out = _run(capsys, "check", *args)
    assert rc == 0 and "0 difference(s)" in out

    # Drift by hand: check must notice it, apply must repair it.
    target = prefix + "tickwire.health"
    alter = ConfigResource(
        ResourceType.TOPIC,
        target,
        incremental_configs=[
            ConfigEntry("retention.ms", "1234", incremental_operation=AlterConfigOpType.SET)
        ],
    )
    for fut in admin.incremental_alter_configs([alter]).values():
        fut.result(timeout=10)

    def drift_seen() -> str | None:
        rc, out = _run(capsys, "check", *args)
        return out if rc == 1 else None

    out = wait_for(drift_seen, timeout=15, interval=0.2, what="drift to be reported")
    assert f"drift config      {target}: retention.ms: 1234 -> 86400000" in out
    rc, out = _run(capsys, "apply", *args)
    assert rc == 0 and "1 change(s) applied" in out
    rc, out = _run(capsys, "check", *args)
    assert rc == 0


def test_fewer_partitions_than_existing_is_reported(
    kafka_bootstrap: str, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    name = prefix + "tickwire.gaps"  # wants 1 partition
    for fut in admin.create_topics([NewTopic(name, num_partitions=2, replication_factor=1)]).values():
        fut.result(timeout=30)
    _visible(admin, name, 2)
    args = ("--bootstrap", kafka_bootstrap, "--prefix", prefix)
    rc, out = _run(capsys, "apply", *args)
    assert rc == 1
    assert f"WARNING shrink      {name}: has 2 partitions, wants 1: cannot shrink" in out
    rc, out = _run(capsys, "check", *args)
    assert rc == 1 and f"drift shrink      {name}" in out
