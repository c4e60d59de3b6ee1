"""Scenario 4: open-loop end-to-end latency (simulator -> `tickwire ingest` -> `tickwire normalize`), and
scenario 6: the RSS of every process the scenarios ran.

The simulator sends on a fixed timetable whatever happens downstream (no coordinated omission). The
canonical latency is ``monitor.LatencySampler``'s: canonical record timestamp (CreateTime, ms) minus
ts_recv. A second consumer adds two views the canonical number cannot show: when a read_committed
consumer actually sees the record (exactly-once output is visible only after its transaction commits),
and the latency from the simulator's own event stamp (so time queued in the socket before ts_recv shows).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from tickwire.bench.common import Ctx, Outcome, Skip
from tickwire.bench.env import Proc, create_topics, tickwire_argv, wait_until
from tickwire.bench.s_normalize import start_normalizer
from tickwire.bench.stats import lag_grows, summarize
from tickwire.contract.kafka_security import client_conf
from tickwire.infra.process import free_port
from tickwire.logs import kv

log = logging.getLogger(__name__)

SYMBOLS = ("AAPL", "SPY", "QQQ")  # the Alpaca producer's default subscription
_LISTEN = re.compile(r"listening (ws://\S+)")


class VisibilityProbe:
    """read_committed tail of canonical topics: (now - record timestamp) for every record, and
    (record timestamp - ts_event) for every ``every``-th record (decoded)."""

    def __init__(self, bootstrap: str, topics: list[str], every: int = 8) -> None:
        self.bootstrap, self.topics, self.every = bootstrap, topics, every
        self.visible_ms: list[float] = []
        self.from_event_ms: list[float] = []
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="visibility-probe", daemon=True)

    def start(self) -> None:
        self._t.start()

    def stop(self) -> None:
        self._stop.set()
        self._t.join(10)

    def _run(self) -> None:
        from confluent_kafka import Consumer

        from tickwire.contract.codec import Codec

        codec = Codec()
        c = Consumer(
            client_conf(self.bootstrap)
            | {
                "group.id": f"tickwire-bench-vis-{time.time_ns()}",
                "auto.offset.reset": "latest",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        c.subscribe(self.topics, on_assign=lambda *_: self.ready.set())
        n = 0
        try:
            while not self._stop.is_set():
                msgs = c.consume(500, timeout=0.2)
                now_ms = time.time_ns() / 1e6
                for m in msgs:
                    if m.error() or m.value() is None:
                        continue
                    _, ts_ms = m.timestamp()
                    if ts_ms <= 0:
                        continue
                    self.visible_ms.append(now_ms - ts_ms)
                    n += 1
                    if n % self.every == 0:
                        try:
                            rec = codec.decode(m.value())
                        except Exception:  # a foreign record is no sample
                            continue
                        self.from_event_ms.append(ts_ms - rec.ts_event / 1e6)
        finally:
            c.close()


def _start_sim(ctx: Ctx, rate: int, name: str) -> tuple[Proc, str]:
    argv = tickwire_argv(
        "simulate",
        "alpaca",
        "--port",
        "0",
        "--mode",
        "generate",
        "--rate",
        str(rate),
        "--batch",
        str(ctx.sizes.latency_batch),
        "--seed",
        "1",
        "--symbols",
        *SYMBOLS,
    )
    sim = Proc(name, argv, ctx.out_dir)
    url: list[str] = []

    def listening() -> bool:
        m = _LISTEN.search(sim.output())
        if m:
            url.append(m.group(1))
        return bool(m) or not sim.alive()

    wait_until(listening, 30, 0.1)
    if not url:
        sim.stop()
        raise RuntimeError(f"simulator did not start: {sim.tail()}")
    return sim, url[0]


def _received(port: int) -> float | None:
    from tickwire.monitor import scrape, total

    return total(scrape(port), "tickwire_ingest_messages_received_total")


def measure_rate(ctx: Ctx, rate: int, seconds: float, warmup: float) -> dict[str, Any]:
    """Simulator at ``rate`` events/s -> producer -> a fresh normalizer (own topics, so no backlog of an
    earlier step pollutes this one); latency over ``seconds`` after ``warmup``."""
    from tickwire.monitor import LatencySampler, group_lag

    bs = ctx.servers.kafka
    prefix = ctx.prefix(f"lat{rate}")
    create_topics(bs, [prefix + "alpaca.raw"], 3)
    norm, _ = start_normalizer(ctx, prefix, ("alpaca",), f"normalizer-latency-{rate}")
    out_topics = [prefix + "stock_trades_realtime", prefix + "stock_quotes_realtime"]
    sampler = LatencySampler(bs, out_topics, window=max(100_000, int(rate * (seconds + warmup) * 1.5)))
    probe = VisibilityProbe(bs, out_topics)
    sampler.start()
    probe.start()
    probe.ready.wait(30)
    sim, url = _start_sim(ctx, rate, f"sim-alpaca-{rate}")
    iport = free_port()
    ingest = Proc(
        f"ingest-alpaca-{rate}",
        tickwire_argv(
            "ingest",
            "alpaca",
            "--url",
            url + "/v2/iex",
            "--bootstrap",
            bs,
            "--topic-prefix",
            prefix,
            "--metrics-port",
            str(iport),
            "--no-control",
        ),
        ctx.out_dir,
    )
    group, raw = prefix + "tickwire-normalizer", [prefix + "alpaca.raw"]
    try:
        if not wait_until(lambda: sampler.count > 0 or not ingest.alive(), 90, 0.2) or not ingest.alive():
            raise RuntimeError(
                f"no canonical records at {rate}/s: ingest: {ingest.tail(5)} sim: {sim.tail(5)}"
            )
        time.sleep(warmup)
        n0, v0, e0 = sampler.count, len(probe.visible_ms), len(probe.from_event_ms)
        r0, t0 = _received(iport), time.monotonic()
        lags: list[tuple[float, float]] = []
        while (now := time.monotonic()) < t0 + seconds:
            lag = group_lag(bs, group, raw)
            if lag is not None:
                lags.append((now - t0, float(lag)))
            time.sleep(max(0.0, min(2.0, t0 + seconds - time.monotonic())))
        secs = time.monotonic() - t0
        n1, r1 = sampler.count, _received(iport)
        v1, e1 = len(probe.visible_ms), len(probe.from_event_ms)
    finally:
        ingest.stop()
        sim.stop()
        norm.stop()
        sampler.stop()
        probe.stop()
        ctx.note_memory("normalizer", norm, f"latency {rate}/s: live alpaca")
        ctx.note_memory("producer", ingest, f"latency {rate}/s: tickwire ingest alpaca")
        ctx.note_memory("simulator", sim, f"latency {rate}/s: tickwire simulate alpaca")
    first = max(0, n0 - (sampler.count - len(sampler.samples)))  # deque index of sample number n0
    samples = list(sampler.samples)[first : first + (n1 - n0)]
    canonical_rate = (n1 - n0) / secs
    frames_rate = ((r1 or 0) - (r0 or 0)) / secs if r0 is not None and r1 is not None else None
    grows = lag_grows(lags, rate)
    return {
        "rate": rate,
        "seconds": round(secs, 1),
        "warmup_s": warmup,
        "canonical_per_s": round(canonical_rate, 1),
        "producer_frames_per_s": round(frames_rate, 1) if frames_rate is not None else None,
        "lag_first": lags[0][1] if lags else None,
        "lag_last": lags[-1][1] if lags else None,
        "lag_grows": grows,
        "sustained": (not grows) and canonical_rate >= 0.9 * rate,
        "append_minus_ts_recv_ms": summarize(samples),
        "visible_minus_append_ms": summarize(probe.visible_ms[v0:v1]),
        "append_minus_sim_event_ms": summarize(probe.from_event_ms[e0:e1]),
    }


def latency(ctx: Ctx) -> Outcome:
    sz = ctx.sizes
    numbers: dict[str, Any] = {}
    notes = [
        f"simulator: tickwire simulate alpaca --mode generate, {sz.latency_batch} message(s) per frame, "
        "open loop (paced() timetable); producer: tickwire ingest alpaca; one normalizer worker "
        "(exactly_once; a fresh one and fresh topics per rate)",
        "append_minus_ts_recv_ms = canonical CreateTime (ms resolution) - ts_recv (monitor.LatencySampler)",
        "visible_minus_append_ms = wall time a read_committed consumer receives it - CreateTime "
        "(transaction commit wait)",
        "append_minus_sim_event_ms = CreateTime - the simulator's event stamp (includes socket queueing "
        "before ts_recv), every 8th record",
        "sustained = consumer lag of the normalizer does not grow by more than 1 s of input over the step "
        "and canonical output >= 90% of the rate",
    ]
    results: dict[int, dict[str, Any]] = {}
    plan = [(1_000, sz.latency_low_seconds), (sz.latency_rate, sz.latency_seconds)]
    for r, secs in plan:
        log.info("latency step %s", kv(rate=r, seconds=secs))
        results[r] = measure_rate(ctx, r, secs, sz.latency_warmup_s)
        numbers[f"rate_{r}"] = results[r]
    numbers["main"] = results[sz.latency_rate]
    # Highest rate sustained without growing lag: double while sustained, else bisect below.
    lo = max((r for r, v in results.items() if v["sustained"]), default=0)
    hi = min((r for r, v in results.items() if not v["sustained"]), default=None)
    search = []
    for _ in range(sz.search_steps):
        r = lo * 2 if hi is None else (lo + hi) // 2
        if r <= 0 or (hi is not None and hi - lo <= max(100, lo // 10)):
            break
        log.info("latency search %s", kv(rate=r, lo=lo, hi=hi))
        v = measure_rate(ctx, r, sz.search_step_s, min(3.0, sz.latency_warmup_s))
        search.append(
            {k: v[k] for k in ("rate", "canonical_per_s", "lag_first", "lag_last", "sustained")}
            | {
                "p50_ms": v["append_minus_ts_recv_ms"].get("p50"),
                "p99_ms": v["append_minus_ts_recv_ms"].get("p99"),
            }
        )
        if v["sustained"]:
            lo = r
        else:
            hi = r
    numbers["max_sustained"] = {"rate": lo, "first_unsustained": hi, "steps": search}
    params = {
        "main_rate": sz.latency_rate,
        "main_seconds": sz.latency_seconds,
        "low_rate": 1_000,
        "low_seconds": sz.latency_low_seconds,
        "warmup_s": sz.latency_warmup_s,
        "search_step_s": sz.search_step_s,
        "search_steps": sz.search_steps,
        "messages_per_frame": sz.latency_batch,
        "symbols": list(SYMBOLS),
    }
    return Outcome(numbers=numbers, params=params, notes=notes)


ROLES = ("producer", "normalizer", "bridge", "simulator")


def memory(ctx: Ctx) -> Outcome:
    """Peak and steady RSS per role, gathered from the processes the other scenarios ran."""
    if not ctx.memory:
        raise Skip("no process ran (run it with normalize, latency and/or bridges)")
    numbers: dict[str, Any] = {}
    for role in ROLES:
        runs = ctx.memory.get(role) or []
        if not runs:
            continue
        peak = max(runs, key=lambda r: r.get("peak_mib", 0))
        numbers[role] = {
            "peak_mib": peak["peak_mib"],
            "peak_process": f"{peak['process']} ({peak['during']})",
            "steady_mib": max(r.get("steady_mib", 0) for r in runs),
        }
    return Outcome(
        numbers=numbers,
        params={"source": "/proc/<pid>/status VmRSS every 0.2 s + VmHWM; steady = median of the second half"},
        extra={"processes": ctx.memory},
    )
