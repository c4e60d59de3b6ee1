"""Configuration of runtime workers: frozen pydantic models that reject unknown keys.

A process's settings class (``tickwire.settings.ProcessSettings``) builds one of these; the runtime never
reads the environment itself, so every process maps the same shared variables the same way.
"""

from __future__ import annotations

import socket
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tickwire.contract.kafka_security import KafkaSecurity, client_conf

ClientValue = str | int | float | bool


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bootstrap_servers: str
    group_id: str
    topics: tuple[str, ...]
    # Extra librdkafka settings for every client of the worker (security, timeouts): one place, so
    # every process talks to the cluster the same way.
    kafka_client: dict[str, ClientValue] = Field(default_factory=dict)
    security: KafkaSecurity | None = None  # None = the process's KAFKA_* security settings
    batch_size: int = Field(default=1000, ge=1, le=100_000)  # records per consume() call at most
    poll_timeout_ms: int = Field(default=100, ge=1)  # longest wait of one consume() when idle
    commit_interval_ms: int = Field(default=50, ge=1)  # commit at least this often while records flow
    commit_max_records: int = Field(default=20_000, ge=1)  # ... or after this many input records
    # ... or after this many output records. One input record can fan out (a DBN raw message carries up
    # to 1000 records): a transaction must stay far below the broker's transaction timeout, so the
    # worker also shrinks its consume() batch to about this many outputs (``batch_for``).
    commit_max_outputs: int = Field(default=100_000, ge=1)
    session_timeout_ms: int = Field(default=10_000, ge=1000)
    heartbeat_interval_ms: int = Field(default=1000, ge=100)
    max_poll_interval_ms: int = Field(default=300_000, ge=1000)
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    isolation_level: Literal["read_committed", "read_uncommitted"] = "read_committed"
    lag_interval_s: float = Field(default=1.0, gt=0)  # how often the lag gauge is refreshed
    retry_base_s: float = Field(default=0.1, gt=0)
    retry_cap_s: float = Field(default=5.0, gt=0)
    # Liveness (/healthz) fails when the main loop has not run for this long. Above the longest ordinary
    # blocking call of a cycle: the 30 s in-flight drain (commit_timeout_s). The longer bounded calls
    # (commit, abort, assign + restore, startup) extend it by their own timeouts (worker.py).
    loop_stall_s: float = Field(default=60.0, gt=0)
    client_id: str = ""

    def common_conf(self) -> dict[str, Any]:
        # SASL/TLS from the process's KAFKA_* settings unless given (tickwire.contract.kafka_security).
        conf: dict[str, Any] = client_conf(self.bootstrap_servers, security=self.security)
        if self.client_id:
            conf["client.id"] = self.client_id
        conf.update(self.kafka_client)
        return conf

    def group_instance_id(self) -> str | None:
        return None

    def consumer_conf(self) -> dict[str, Any]:
        conf = self.common_conf()
        gid = self.group_instance_id()
        if gid is not None:
            conf["group.instance.id"] = gid
        conf.update(
            {
                "group.id": self.group_id,
                "partition.assignment.strategy": "cooperative-sticky",
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": self.auto_offset_reset,
                "isolation.level": self.isolation_level,
                "session.timeout.ms": self.session_timeout_ms,
                "heartbeat.interval.ms": min(self.heartbeat_interval_ms, self.session_timeout_ms // 3),
                "max.poll.interval.ms": self.max_poll_interval_ms,
                # A missing input topic must not be created by a consumer's metadata request.
                "allow.auto.create.topics": False,
            }
        )
        return conf

    def admin_conf(self) -> dict[str, Any]:
        return self.common_conf()


class StreamConfig(_Base):
    """A transform worker (Kafka in -> Kafka out)."""

    guarantee: Literal["exactly_once", "at_least_once"] = "exactly_once"
    # Names the changelog topics (``{app_id}-{topic}-changelog``) and the transactional ids; "" = group.
    app_id: str = ""
    stateful: bool = False
    # Stable per worker slot (e.g. "0", "1"): the transactional id is ``{app_id}-{instance_id}``, so a
    # restarted worker fences and aborts its killed predecessor's transaction at once. "" = host + random.
    instance_id: str = ""
    # Static group membership (KIP-345) as ``{app_id}-{instance_id}``: a restarted worker slot takes its
    # partitions back at once instead of after a session timeout plus two rebalances. A clean stop then
    # keeps them until the session times out (static members do not leave), so it suits supervised
    # slots with restarts, not elastic scaling.
    static_membership: bool = False
    transaction_timeout_ms: int = Field(default=10_000, ge=1000)
    # librdkafka defaults to 5 ms; the live path wants it at most 1 (outputs go out as they are made).
    linger_ms: float = Field(default=1.0, ge=0, le=1)
    max_in_flight: int = Field(default=100_000, ge=1)  # produced, undelivered records before processing waits
    compression: Literal["none", "lz4", "zstd", "snappy", "gzip"] = "lz4"
    changelog_replication_factor: int = -1  # -1 = the broker's default
    restore_timeout_s: float = Field(default=120.0, gt=0)
    commit_timeout_s: float = Field(default=30.0, gt=0)

    @model_validator(mode="after")
    def _eos_reads_committed(self) -> StreamConfig:
        if self.guarantee == "exactly_once" and self.isolation_level != "read_committed":
            raise ValueError("exactly_once needs isolation_level=read_committed")
        if self.static_membership and not self.instance_id:
            raise ValueError("static_membership needs an instance_id")
        return self

    def group_instance_id(self) -> str | None:
        return f"{self.effective_app_id}-{self.instance_id}" if self.static_membership else None

    @property
    def effective_app_id(self) -> str:
        return self.app_id or self.group_id

    def transactional_id(self) -> str:
        inst = self.instance_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        return f"{self.effective_app_id}-{inst}"

    def producer_conf(self, transactional_id: str | None) -> dict[str, Any]:
        conf = self.common_conf()
        conf.update(
            {
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": self.linger_ms,
                "compression.type": self.compression,
                # Java-compatible key hashing: the canonical topics' partitions match every other client.
                "partitioner": "murmur2_random",
                "queue.buffering.max.messages": max(self.max_in_flight * 2, 100_000),
                # Writing to a missing topic is an error to roll back, not a topic to create.
                "allow.auto.create.topics": False,
                # Client-side cap only (the broker's per-topic max.message.bytes decides): a whole option
                # chain is one canonical record and may pass the 1 MB default (topics.yaml raises its topic).
                "message.max.bytes": 16 * 1024 * 1024,
            }
        )
        if transactional_id is not None:
            conf["transactional.id"] = transactional_id
            conf["transaction.timeout.ms"] = self.transaction_timeout_ms
            # A record not delivered by then fails its transaction (must not exceed the txn timeout).
            conf["message.timeout.ms"] = self.transaction_timeout_ms
        return conf

    def restore_conf(self) -> dict[str, Any]:
        conf = self.common_conf()
        conf.update(
            {
                # Never joins or commits (assign() only); librdkafka just insists on a group id.
                "group.id": f"{self.group_id}.restore",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "allow.auto.create.topics": False,
            }
        )
        return conf


def batch_for(fanout: float, batch_size: int, max_outputs: int) -> int:
    """Input records per consume() so that one batch yields about ``max_outputs`` outputs at the
    observed ``fanout`` (outputs per input record), within [1, batch_size]."""
    return max(1, min(batch_size, int(max_outputs / max(fanout, 1.0))))
