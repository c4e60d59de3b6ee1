"""What every scenario shares: the run context, the Skip signal, scenario results and the normalizer's
and bridges' Prometheus counters read from outside."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tickwire.bench.env import Proc, Servers, loadavg
from tickwire.monitor import Samples, scrape

# Canonical output topics (before the prefix) counted as "canonical records out".
CANONICAL_SUFFIXES = ("_trades_realtime", "_quotes_realtime", "_bars_staging", "_book_realtime")
INSTRUMENTS = "instrument_definitions"


class Skip(Exception):
    """The scenario cannot run (a component is missing): reported as ``skipped: <why>``."""


@dataclass
class Sizes:
    """Scenario sizes; ``--quick`` shrinks them for a smoke run."""

    ceiling_events: int = 1_000_000
    ingest_events: int = 300_000
    dbn_records: int = 1_000_000
    normalize_events: int = 1_000_000
    core_events: int = 200_000
    drain_timeout_s: float = 150.0  # mixed backlog; the rate is taken over the observed window if cut
    dbn_drain_timeout_s: float = 75.0
    latency_rate: int = 10_000
    latency_seconds: float = 60.0
    latency_low_seconds: float = 30.0
    latency_warmup_s: float = 10.0
    search_step_s: float = 15.0
    search_steps: int = 3
    latency_batch: int = 1
    bridge_records: int = 100_000
    bridge_probe: int = 2_000
    bridge_probe_rate: int = 1_000
    profile_s: float = 10.0

    @classmethod
    def quick(cls) -> Sizes:
        return cls(
            ceiling_events=100_000,
            ingest_events=50_000,
            dbn_records=200_000,
            normalize_events=100_000,
            core_events=30_000,
            drain_timeout_s=60.0,
            dbn_drain_timeout_s=40.0,
            latency_rate=2_000,
            latency_seconds=10.0,
            latency_low_seconds=8.0,
            latency_warmup_s=3.0,
            search_step_s=6.0,
            search_steps=2,
            bridge_records=20_000,
            bridge_probe=300,
            bridge_probe_rate=300,
            profile_s=4.0,
        )


@dataclass
class Ctx:
    servers: Servers
    sizes: Sizes
    out_dir: Path  # logs and profiles of this run
    cache_dir: Path  # generated inputs kept between runs
    profile: bool = True
    keep_topics: bool = False
    run_id: str = field(default_factory=lambda: f"bench{time.strftime('%H%M%S')}{uuid.uuid4().hex[:4]}")
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    # role -> memory summaries of every process of that role (producer, normalizer, bridge, simulator)
    memory: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def prefix(self, scenario: str) -> str:
        return f"{self.run_id}.{scenario}."

    def note_memory(self, role: str, proc: Proc, during: str) -> None:
        mem = proc.memory()
        if mem and mem["samples"] >= 5:  # a process that lived under a second says nothing about RSS
            self.memory.setdefault(role, []).append({"process": proc.name, "during": during, **mem})


@dataclass
class Outcome:
    """What a scenario function returns (status ok); failures are raised."""

    numbers: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def scenario_result(status: str, started: float, load_before: str, outcome: Outcome | None) -> dict[str, Any]:
    res: dict[str, Any] = {
        "status": status,
        "seconds": round(time.monotonic() - started, 1),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
    }
    if outcome is not None:
        res |= {"params": outcome.params, "numbers": outcome.numbers, "notes": outcome.notes, **outcome.extra}
    return res


def is_canonical(topic: str, prefix: str) -> bool:
    name = topic[len(prefix) :] if topic.startswith(prefix) else topic
    return name.endswith(CANONICAL_SUFFIXES) or name == INSTRUMENTS


@dataclass
class NormCounters:
    raw_in: float = 0.0
    canonical: float = 0.0
    gaps: float = 0.0
    dlq: float = 0.0
    control: float = 0.0
    duplicates: float = 0.0


def normalizer_counters(samples: Samples | None, prefix: str) -> NormCounters | None:
    """Totals of a normalizer's /metrics; None when the endpoint does not answer."""
    if samples is None:
        return None
    c = NormCounters()
    p = "tickwire_normalizer_"
    c.raw_in = sum(v for _, v in samples.get(p + "raw_records_total", []))
    for labels, v in samples.get(p + "records_out_total", []):
        topic = labels.get("topic", "")
        if topic.endswith(".dlq"):
            continue
        if is_canonical(topic, prefix):
            c.canonical += v
        elif topic.endswith("tickwire.gaps"):
            c.gaps += v
    for name, attr in (
        ("dlq_total", "dlq"),
        ("control_frames_total", "control"),
        ("duplicates_total", "duplicates"),
    ):
        setattr(c, attr, sum(v for _, v in samples.get(p + name, [])))
    return c


def read_normalizer(port: int, prefix: str) -> NormCounters | None:
    return normalizer_counters(scrape(port, timeout=2.0), prefix)


def bridge_out(port: int, bridge: str) -> float | None:
    s = scrape(port, timeout=2.0)
    if s is None:
        return None
    return sum(
        v for labels, v in s.get("tickwire_bridge_records_out_total", []) if labels.get("bridge") == bridge
    )
