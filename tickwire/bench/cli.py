"""`tickwire bench [--only s1,s2] [--quick]`: run the benchmark scenarios against the local servers.

Scenarios, in order: ceiling, ingest, normalize, latency, bridges, memory (peak/steady RSS of the processes
of normalize, latency and bridges). Each uses its own topic names; a scenario whose component is missing
is reported ``skipped: <why>``, one that fails ``error: <why>`` — never faked. Results go to
``bench-results/<timestamp>.json`` (+ ``latest.json``) and a readable table (printed, and ``.md``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tickwire import logs
from tickwire.bench.common import Ctx, Outcome, Sizes, Skip, scenario_result
from tickwire.bench.env import delete_prefixed, ensure_servers, loadavg, machine_facts
from tickwire.bench.stats import assemble, render_markdown
from tickwire.logs import kv

log = logging.getLogger(__name__)

ORDER = ("ceiling", "ingest", "normalize", "latency", "bridges", "memory")


def _scenarios() -> dict[str, Callable[[Ctx], Outcome]]:
    from tickwire.bench import s_bridges, s_ingest, s_latency, s_normalize
    from tickwire.bench.s_latency import memory

    return {
        "ceiling": s_ingest.ceiling,
        "ingest": s_ingest.ingest,
        "normalize": s_normalize.normalize,
        "latency": s_latency.latency,
        "bridges": s_bridges.bridges,
        "memory": memory,
    }


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="tickwire bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", help=f"comma-separated scenarios (default all: {','.join(ORDER)})")
    ap.add_argument("--quick", action="store_true", help="small sizes and short durations (smoke run)")
    ap.add_argument("--out", type=Path, default=Path("bench-results"), help="results directory")
    ap.add_argument("--latency-seconds", type=float, help="measured seconds at the main latency rate")
    ap.add_argument("--latency-rate", type=int, help="main open-loop rate, events/s (default 10000)")
    ap.add_argument("--latency-batch", type=int, help="simulator messages per WebSocket frame (default 1)")
    ap.add_argument("--events", type=int, help="vendor events in the normalize backlog (default 1,000,000)")
    ap.add_argument("--drain-timeout", type=float, help="give up draining a backlog after this many seconds")
    ap.add_argument("--no-profile", action="store_true", help="skip py-spy profiles of the processes")
    ap.add_argument("--keep-topics", action="store_true", help="keep the run's Kafka topics afterwards")
    return ap


def main(argv: list[str]) -> int:
    a = build_parser().parse_args(argv)
    logs.setup()
    only = [s.strip() for s in (a.only or ",".join(ORDER)).split(",") if s.strip()]
    unknown = [s for s in only if s not in ORDER]
    if unknown:
        print(
            f"tickwire bench: unknown scenario(s) {','.join(unknown)}; valid: {','.join(ORDER)}",
            file=sys.stderr,
        )
        return 2
    sizes = Sizes.quick() if a.quick else Sizes()
    for opt, attr in (
        ("latency_seconds", "latency_seconds"),
        ("latency_rate", "latency_rate"),
        ("latency_batch", "latency_batch"),
        ("events", "normalize_events"),
        ("drain_timeout", "drain_timeout_s"),
    ):
        if getattr(a, opt) is not None:
            setattr(sizes, attr, getattr(a, opt))
    stamp = time.strftime("%Y%m%dT%H%M%S")
    out_root: Path = a.out
    run_dir = out_root / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    servers = ensure_servers()
    ctx = Ctx(
        servers=servers,
        sizes=sizes,
        out_dir=run_dir,
        cache_dir=out_root / "cache",
        profile=not a.no_profile,
        keep_topics=a.keep_topics,
    )
    machine = machine_facts(servers)
    scenarios = _scenarios()
    log.info("bench start %s", kv(run=ctx.run_id, only=",".join(only), quick=a.quick, out=run_dir))
    for name in ORDER:
        if name not in only:
            continue
        ctx.results[name] = run_one(ctx, name, scenarios[name])
        log.info(
            "scenario done %s",
            kv(name=name, status=ctx.results[name]["status"], seconds=ctx.results[name]["seconds"]),
        )
        _write(out_root, stamp, ctx, machine, sizes, a.quick, only)  # partial results survive a crash
    if not ctx.keep_topics:
        try:
            log.info("deleted run topics %s", kv(count=delete_prefixed(servers.kafka, ctx.run_id + ".")))
        except Exception as exc:
            log.warning("topic clean-up failed %s", kv(error=exc))
    result = _write(out_root, stamp, ctx, machine, sizes, a.quick, only)
    print(render_markdown(result))
    errors = [n for n, r in ctx.results.items() if str(r["status"]).startswith("error")]
    return 1 if errors else 0


def run_one(ctx: Ctx, name: str, fn: Callable[[Ctx], Outcome]) -> dict[str, Any]:
    started, load = time.monotonic(), loadavg()
    log.info("scenario start %s", kv(name=name, load=load))
    try:
        return scenario_result("ok", started, load, fn(ctx))
    except Skip as exc:
        return scenario_result(f"skipped: {exc}", started, load, None)
    except Exception as exc:
        log.error("scenario failed %s\n%s", kv(name=name, error=repr(exc)), traceback.format_exc())
        return scenario_result(f"error: {type(exc).__name__}: {exc}"[:500], started, load, None)


def _write(
    out_root: Path, stamp: str, ctx: Ctx, machine: dict[str, Any], sizes: Sizes, quick: bool, only: list[str]
) -> dict[str, Any]:
    params = {
        "quick": quick,
        "only": only,
        "run_id": ctx.run_id,
        "sizes": vars(sizes),
        "run_dir": str(ctx.out_dir),
    }
    result = assemble(started=stamp, machine=machine, params=params, scenarios=ctx.results)
    text = json.dumps(result, indent=2, default=str)
    md = render_markdown(result)
    for name in (stamp, "latest"):
        (out_root / f"{name}.json").write_text(text)
        (out_root / f"{name}.md").write_text(md)
    return result
