"""Pure helpers of the benchmarks: percentiles, rates, drain windows, targets, result assembly, tables."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in [0, 100]); NaN when empty.

    Nearest rank never interpolates: p99.9 of a sample is a value that was actually observed.
    """
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if q <= 0:
        return float(sorted_values[0])
    rank = math.ceil(q / 100.0 * n)
    return float(sorted_values[min(n, max(1, rank)) - 1])


def summarize(values: Iterable[float], qs: Sequence[float] = (50, 90, 99, 99.9)) -> dict[str, float]:
    """count, mean, the percentiles (keys p50, p99.9, ...) and max of a sample; {"count": 0} when empty."""
    data = sorted(values)
    if not data:
        return {"count": 0}
    out: dict[str, float] = {"count": len(data), "mean": statistics.fmean(data), "min": data[0]}
    for q in qs:
        out[f"p{q:g}"] = percentile(data, q)
    out["max"] = data[-1]
    return out


def rate(count: float, seconds: float) -> float:
    """count / seconds, 0 when no time passed (never a division error in a report)."""
    return count / seconds if seconds > 0 else 0.0


@dataclass(frozen=True)
class Window:
    """The span in which a counter moved from its first change to reaching its final value."""

    start: float
    end: float
    count: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def rate(self) -> float:
        return rate(self.count, self.seconds)


def drain_window(samples: Sequence[tuple[float, float]], target: float | None = None) -> Window | None:
    """From (time, cumulative count) samples: first increase -> first sample at ``target`` (or at the
    last value seen). The start is the last sample before the first increase, so the window covers it.

    None when the counter never moved.
    """
    if len(samples) < 2:
        return None
    base = samples[0][1]
    start_i = next((i for i, (_, c) in enumerate(samples) if c > base), None)
    if start_i is None:
        return None
    goal = samples[-1][1] if target is None else min(target, samples[-1][1])
    end_i = next(i for i, (_, c) in enumerate(samples) if c >= goal)
    t0 = samples[start_i - 1][0]
    return Window(t0, samples[end_i][0], samples[end_i][1] - base)


def lag_grows(lags: Sequence[tuple[float, float]], rate_per_s: float, tolerance_s: float = 1.0) -> bool:
    """Whether consumer lag grew over the run by more than ``tolerance_s`` seconds of input.

    Compares the mean lag of the last third with the first third (robust to one slow commit).
    """
    if len(lags) < 3:
        return False
    k = max(1, len(lags) // 3)
    head = statistics.fmean(v for _, v in lags[:k])
    tail = statistics.fmean(v for _, v in lags[-k:])
    return tail - head > rate_per_s * tolerance_s


def rss_summary(samples_kib: Sequence[int], hwm_kib: int | None = None) -> dict[str, float]:
    """Peak and steady RSS in MiB: steady = median of the second half of the samples (after warm-up)."""
    if not samples_kib:
        return {}
    half = list(samples_kib[len(samples_kib) // 2 :])
    peak = max(max(samples_kib), hwm_kib or 0)
    return {
        "peak_mib": round(peak / 1024, 1),
        "steady_mib": round(statistics.median(half) / 1024, 1),
        "samples": len(samples_kib),
    }


Op = Literal[">=", "<="]


@dataclass(frozen=True)
class Target:
    """A published goal: ``metric`` of ``scenario`` must be ``op`` ``threshold``."""

    name: str
    scenario: str
    metric: str  # dotted path into the scenario's numbers
    op: Op
    threshold: float
    unit: str

    def check(self, value: float | None) -> dict[str, Any]:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return {"target": self.name, "value": None, "status": "not measured"}
        ok = value >= self.threshold if self.op == ">=" else value <= self.threshold
        if self.op == ">=":
            ratio = value / self.threshold if self.threshold else math.inf
        else:
            ratio = self.threshold / value if value else math.inf
        return {
            "target": self.name,
            "value": value,
            "threshold": f"{self.op} {self.threshold:g} {self.unit}",
            "ratio": round(ratio, 3),  # >= 1 means met, for either direction
            "status": "pass" if ok else "miss",
        }


# The goals of issue 10 (the data plane on librdkafka), where the bench measures the quantity they name.
TARGETS: tuple[Target, ...] = (
    Target("normalizer share of ceiling", "normalize", "mixed.ratio_to_ceiling", ">=", 0.35, "x"),
    Target("latency @main rate p50", "latency", "main.append_minus_ts_recv_ms.p50", "<=", 5, "ms"),
    Target("latency @main rate p99", "latency", "main.append_minus_ts_recv_ms.p99", "<=", 20, "ms"),
    Target("DBN replay into databento.raw", "ingest", "dbn_replay.records_per_s", ">=", 500_000, "ev/s"),
    Target("DBN file -> canonical", "normalize", "dbn.canonical_per_s", ">=", 100_000, "ev/s"),
    Target("Redis bridge throughput", "bridges", "redis.records_per_s", ">=", 40_000, "rec/s"),
    Target("NATS bridge throughput", "bridges", "nats.records_per_s", ">=", 30_000, "rec/s"),
    Target("Redis bridge added latency p99", "bridges", "redis.added_latency_ms.p99", "<=", 10, "ms"),
    Target("NATS bridge added latency p99", "bridges", "nats.added_latency_ms.p99", "<=", 10, "ms"),
    Target("producer RSS peak", "memory", "producer.peak_mib", "<=", 100, "MiB"),
    Target("normalizer RSS peak", "memory", "normalizer.peak_mib", "<=", 150, "MiB"),
    Target("bridge RSS peak", "memory", "bridge.peak_mib", "<=", 150, "MiB"),
)


def lookup(numbers: Mapping[str, Any], path: str) -> float | None:
    cur: Any = numbers
    for part in path.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return float(cur) if isinstance(cur, int | float) and not isinstance(cur, bool) else None


def evaluate(
    scenarios: Mapping[str, Mapping[str, Any]], targets: Sequence[Target] = TARGETS
) -> list[dict[str, Any]]:
    """Every target against the scenario numbers; a scenario that did not run gives 'not measured'."""
    out = []
    for t in targets:
        sc = scenarios.get(t.scenario) or {}
        res = t.check(lookup(sc.get("numbers") or {}, t.metric))
        res["scenario"] = t.scenario
        if res["status"] == "not measured" and sc.get("status", "not run") != "ok":
            res["why"] = str(sc.get("status", "not run"))
        out.append(res)
    return out


def assemble(
    *, started: str, machine: Mapping[str, Any], params: Mapping[str, Any], scenarios: Mapping[str, Any]
) -> dict[str, Any]:
    """The JSON result of one run."""
    return {
        "started": started,
        "machine": dict(machine),
        "params": dict(params),
        "scenarios": dict(scenarios),
        "targets": evaluate(scenarios),
    }


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isnan(v):
            return "-"
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        return f"{v:.3g}" if abs(v) < 10 else f"{v:.1f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def flatten(numbers: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in numbers.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(flatten(v, name + "."))
        elif isinstance(v, int | float) and not isinstance(v, bool):
            out.append((name, v))
    return out


def render_markdown(result: Mapping[str, Any]) -> str:
    """A readable table: targets first (pass/miss/ratio), then every scenario's status and numbers."""
    m = result.get("machine", {})
    lines = [
        f"# tickwire bench {result.get('started', '')}",
        "",
        f"machine: {m.get('cpu_model', '?')}, {m.get('cores', '?')} cores, "
        f"{m.get('memory_gib', '?')} GiB, Python {m.get('python', '?')}, Kafka {m.get('kafka', '?')}, "
        f"Redis {m.get('redis', '?')}, NATS {m.get('nats', '?')}, load before {m.get('loadavg', '?')}",
        "",
        "## Targets",
        "",
        "| target | value | goal | ratio | status |",
        "|---|---:|---|---:|---|",
    ]
    for t in result.get("targets", []):
        status = t["status"] + (f" ({t['why']})" if t.get("why") else "")
        lines.append(
            f"| {t['target']} | {_fmt(t.get('value'))} | {t.get('threshold', '-')} | "
            f"{_fmt(t.get('ratio'))} | {status} |"
        )
    lines += ["", "## Scenarios", ""]
    for name, sc in result.get("scenarios", {}).items():
        lines.append(f"### {name}: {sc.get('status', '?')} ({_fmt(sc.get('seconds'))} s)")
        lines.append("")
        nums = flatten(sc.get("numbers") or {})
        if nums:
            lines += ["| metric | value |", "|---|---:|"]
            lines += [f"| {k} | {_fmt(v)} |" for k, v in nums]
            lines.append("")
        for note in sc.get("notes", []):
            lines.append(f"- {note}")
        if sc.get("notes"):
            lines.append("")
    return "\n".join(lines) + "\n"
