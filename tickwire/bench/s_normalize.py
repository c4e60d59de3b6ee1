"""Scenario 3: one normalizer worker draining a preloaded mixed backlog; the pure pipeline core in-process;
offset reset -> first canonical record; a DBN file -> canonical."""

from __future__ import annotations

import cProfile
import importlib.util
import io
import logging
import pstats
import time
from collections import Counter
from typing import Any

from tickwire.bench import data
from tickwire.bench.common import Ctx, NormCounters, Outcome, read_normalizer
from tickwire.bench.env import Proc, Profile, create_topics, tickwire_argv, wait_until
from tickwire.bench.s_ingest import preload, replay_dbn
from tickwire.bench.stats import drain_window, rate
from tickwire.infra.process import free_port
from tickwire.logs import kv

log = logging.getLogger(__name__)

VENDORS = ("alpaca", "binance", "coinbase", "databento")


def core(events: list[data.RawEvent], prefix: str = "") -> dict[str, Any]:
    """The pure per-message pipeline (parse, validate, dedupe, bars, Avro) in-process, no Kafka."""
    from tickwire.contract.codec import Codec
    from tickwire.normalize.config import NormalizerSettings
    from tickwire.normalize.pipeline import RawMessage, build_pipeline

    s = NormalizerSettings.load(topic_prefix=prefix)
    pipe = build_pipeline(s, Codec())
    seq = data.Sequencer()
    msgs = [
        RawMessage(f"{prefix}{e.source}.raw", 0, i, e.key, e.value, seq.headers(e))
        for i, e in enumerate(events)
    ]
    statuses: Counter[str] = Counter()
    out = 0
    t0 = time.perf_counter()
    for m in msgs:
        r = pipe.process(m)
        statuses[r.status] += 1
        out += sum(1 for o in r.outputs if not o.topic.endswith((".dlq", "tickwire.gaps")))
    secs = time.perf_counter() - t0
    # A second, profiled pass over a slice names the hot spots (cProfile slows it: shares only).
    prof = cProfile.Profile()
    pipe2 = build_pipeline(s, Codec())
    prof.enable()
    for m in msgs[: min(len(msgs), 20_000)]:
        pipe2.process(m)
    prof.disable()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(12)
    top = [ln.strip() for ln in buf.getvalue().splitlines() if ln.strip() and ln.strip()[0].isdigit()][:12]
    return {
        "raw_records": len(msgs),
        "events": data.total_events(events),
        "raw_per_s": rate(len(msgs), secs),
        "events_per_s": rate(data.total_events(events), secs),
        "canonical_per_s": rate(out, secs),
        "canonical": out,
        "us_per_canonical": round(1e6 * secs / max(1, out), 2),
        "statuses": dict(statuses),
        "profile_top_tottime": top,
    }


def start_normalizer(ctx: Ctx, prefix: str, vendors: tuple[str, ...], name: str) -> tuple[Proc, int]:
    port = free_port()
    argv = tickwire_argv(
        "normalize",
        "--bootstrap",
        ctx.servers.kafka,
        "--vendors",
        ",".join(vendors),
        "--topic-prefix",
        prefix,
        "--metrics-port",
        str(port),
        "--create-topics",
        "--log-level",
        "WARNING",
    )
    env = {"NORMALIZER_DATA_DIR": str(ctx.out_dir / "normalizer-data")}
    return Proc(name, argv, ctx.out_dir, env), port


def drain(
    ctx: Ctx, proc: Proc, port: int, prefix: str, raw_total: int, timeout: float, profile_name: str | None
) -> dict[str, Any]:
    """Poll the normalizer's counters until it consumed ``raw_total`` raw records (or timeout)."""
    samples: list[tuple[float, NormCounters]] = []
    t_start = time.monotonic()
    deadline = t_start + timeout
    first_out: float | None = None
    profile: Profile | None = None
    last: NormCounters | None = None
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"normalizer exited rc={proc.p.returncode}: {proc.tail()}")
        c = read_normalizer(port, prefix)
        now = time.monotonic()
        if c is not None:
            samples.append((now, c))
            last = c
            if first_out is None and c.canonical > 0:
                first_out = now
            if c.raw_in >= raw_total:
                break
            if profile is None and profile_name and ctx.profile and first_out and now - first_out > 3:
                # Mid-drain, so the profile shows the steady state.
                profile = Profile(proc.pid, ctx.sizes.profile_s, ctx.out_dir, profile_name)
        time.sleep(0.5)
    if last is None:
        raise RuntimeError(f"normalizer metrics never answered: {proc.tail()}")
    can = drain_window([(t, c.canonical) for t, c in samples])
    raw = drain_window([(t, c.raw_in) for t, c in samples], raw_total)
    out: dict[str, Any] = {
        "raw_records": int(last.raw_in),
        "canonical": int(last.canonical),
        "gaps": int(last.gaps),
        "dlq": int(last.dlq),
        "control": int(last.control),
        "duplicates": int(last.duplicates),
        "drained": last.raw_in >= raw_total,
        "startup_to_first_canonical_s": round(first_out - proc.started, 2) if first_out else None,
        "raw_per_s": raw.rate if raw else 0.0,
        "canonical_per_s": can.rate if can else 0.0,
        "drain_seconds": round(raw.seconds, 2) if raw else None,
    }
    if profile is not None:
        out["profile"] = profile.result()
    return out


def normalize(ctx: Ctx) -> Outcome:
    bs = ctx.servers.kafka
    numbers: dict[str, Any] = {}
    notes: list[str] = []
    params: dict[str, Any] = {}

    # -- mixed backlog ------------------------------------------------------------------------------
    p = ctx.prefix("norm")
    mix = data.Mix()
    t0 = time.perf_counter()
    events = data.mixed_backlog(ctx.sizes.normalize_events, mix)
    gen_s = time.perf_counter() - t0
    n_events = data.total_events(events)
    by_vendor = Counter(e.source for e in events)
    params["mixed"] = {
        "events": n_events,
        "raw_records": len(events),
        "raw_by_vendor": dict(by_vendor),
        "alpaca_msgs_per_frame": mix.alpaca_batch,
        "dbn_records_per_message": mix.dbn_batch,
        "partitions": 3,
        "vendors": list(VENDORS),
        "processing_guarantee": "exactly_once (default)",
    }

    # The pure core first, alone on the CPU.
    sub = events[: max(1, int(len(events) * ctx.sizes.core_events / max(1, n_events)))]
    numbers["core"] = core(sub)

    create_topics(bs, [f"{p}{v}.raw" for v in VENDORS], 3)
    pre = preload(bs, lambda ev: f"{p}{ev.source}.raw", events, data.Sequencer())
    pre["generation_s"] = round(gen_s, 1)
    numbers["preload"] = pre
    del events

    proc, port = start_normalizer(ctx, p, VENDORS, "normalizer-mixed")
    try:
        res = drain(
            ctx, proc, port, p, sum(by_vendor.values()), ctx.sizes.drain_timeout_s, "normalizer-mixed"
        )
        res["events_per_s"] = rate(n_events, res["drain_seconds"] or 0) if res["drained"] else None
        committed = _wait_committed(bs, proc.name, p, 30)
        res["committed_lag_after_drain"] = committed
    finally:
        proc.stop()
        ctx.note_memory("normalizer", proc, "normalize: mixed drain")
    ceiling = (ctx.results.get("ceiling") or {}).get("numbers", {}).get("events_per_s")
    res["ratio_to_ceiling"] = res["canonical_per_s"] / ceiling if ceiling else None
    if not ceiling:
        notes.append("ratio_to_ceiling not computed: the ceiling scenario did not run in this invocation")
    if res["dlq"]:
        notes.append(f"mixed backlog: {res['dlq']} raw records went to the DLQ (input measures the DLQ path)")
    if not res["drained"]:
        notes.append(
            f"mixed backlog NOT drained within {ctx.sizes.drain_timeout_s:.0f} s: rates are over the "
            "observed window"
        )
    numbers["mixed"] = res
    numbers["framework_overhead"] = {
        "core_canonical_per_s": numbers["core"]["canonical_per_s"],
        "worker_canonical_per_s": res["canonical_per_s"],
        "worker_share_of_core": round(res["canonical_per_s"] / numbers["core"]["canonical_per_s"], 3)
        if numbers["core"]["canonical_per_s"]
        else None,
    }

    # -- offset reset -> first canonical record ------------------------------------------------------
    numbers["offset_reset"] = offset_reset(ctx, p, notes)

    # -- DBN file -> canonical -----------------------------------------------------------------------
    numbers["dbn"] = dbn_to_canonical(ctx, notes)
    return Outcome(numbers=numbers, params=params, notes=notes)


def _wait_committed(bs: str, _name: str, prefix: str, timeout: float) -> int | None:
    """Lag of the normalizer group after the drain, once its last transaction committed (0 = all done)."""
    from tickwire.monitor import group_lag

    group = prefix + "tickwire-normalizer"
    topics = [f"{prefix}{v}.raw" for v in VENDORS]
    lag: list[int | None] = [None]

    def done() -> bool:
        lag[0] = group_lag(bs, group, topics)
        return lag[0] == 0

    wait_until(done, timeout, 1.0)
    return lag[0]


def offset_reset(ctx: Ctx, prefix: str, notes: list[str]) -> dict[str, Any]:
    if importlib.util.find_spec("tickwire.offsets") is None:
        notes.append(
            "offset reset not measured: tickwire.offsets (`tickwire replay offsets`) does not exist yet"
        )
        return {"status": "skipped: tickwire.offsets missing"}
    group = prefix + "tickwire-normalizer"
    topics = [a for v in VENDORS for a in ("--topic", f"{prefix}{v}.raw")]
    argv = tickwire_argv(
        "replay",
        "offsets",
        "--bootstrap",
        ctx.servers.kafka,
        "--group",
        group,
        *topics,
        "--to-earliest",
        "--execute",
    )
    t0 = time.monotonic()
    r = Proc("offsets-reset", argv, ctx.out_dir)
    rc = r.wait(60)
    r.stop()
    t_reset = time.monotonic()
    if rc != 0:
        notes.append(f"offset reset failed rc={rc}: {r.tail(5)}")
        return {"status": f"error: rc={rc}"}
    proc, port = start_normalizer(ctx, prefix, VENDORS, "normalizer-after-reset")
    try:
        first: list[float] = []

        def seen() -> bool:
            c = read_normalizer(port, prefix)
            if c is not None and c.canonical > 0:
                first.append(time.monotonic())
                return True
            return False

        wait_until(seen, 120, 0.1)
    finally:
        proc.stop()
    if not first:
        return {"status": "error: no canonical record within 120 s of the reset"}
    return {
        "status": "ok",
        "reset_command_s": round(t_reset - t0, 2),
        "restart_to_first_canonical_s": round(first[0] - proc.started, 2),
        "reset_to_first_canonical_s": round(first[0] - t0, 2),
    }


def dbn_to_canonical(ctx: Ctx, notes: list[str]) -> dict[str, Any]:
    """`tickwire replay dbn --speed 0` into an idle, warmed-up normalizer: file -> canonical end to end."""
    bs = ctx.servers.kafka
    p = ctx.prefix("normdbn")
    path = data.dbn_file(ctx.cache_dir, ctx.sizes.dbn_records)
    create_topics(bs, [p + "databento.raw"], 3)
    proc, port = start_normalizer(ctx, p, ("databento",), "normalizer-dbn")
    try:
        # Warm-up: one small DBN message on another stream, so the worker is assigned and running.
        warm = data.dbn_events(10, 10)[0]
        warm = data.RawEvent(warm.source, "warmup", b"warmup", warm.value, "dbn", warm.events)
        preload(bs, lambda _e: p + "databento.raw", [warm], data.Sequencer())
        if not wait_until(lambda: (read_normalizer(port, p) or NormCounters()).canonical > 0, 120, 0.2):
            raise RuntimeError(f"normalizer (dbn) produced nothing within 120 s: {proc.tail()}")
        base = read_normalizer(port, p) or NormCounters()
        t0 = time.monotonic()
        rep = replay_dbn(ctx, path, p + "databento.raw", "normalize-dbn")
        raw_total = int(base.raw_in) + rep["messages"]
        res = drain(ctx, proc, port, p, raw_total, ctx.sizes.dbn_drain_timeout_s, "normalizer-dbn")
        t_end = time.monotonic()
        end = read_normalizer(port, p) or NormCounters()
    finally:
        proc.stop()
        ctx.note_memory("normalizer", proc, "normalize: dbn")
    canonical = end.canonical - base.canonical
    log.info("dbn -> canonical %s", kv(records=rep["records"], canonical=canonical, secs=f"{t_end - t0:.1f}"))
    if not res["drained"]:
        notes.append("DBN backlog NOT drained within the timeout: rates are over the observed window")
    return {
        "records": rep["records"],
        "replay_records_per_s": rep["records_per_s"],
        "canonical": int(canonical),
        # file -> canonical, end to end: replay start until the normalizer consumed the last message
        "end_to_end_seconds": round(t_end - t0, 2),
        "canonical_per_s": rate(canonical, t_end - t0),
        "normalizer_drain_canonical_per_s": res["canonical_per_s"],
        "drained": res["drained"],
        "dlq": res["dlq"],
        "gaps": res["gaps"],
        **({"profile": res["profile"]} if "profile" in res else {}),
    }
