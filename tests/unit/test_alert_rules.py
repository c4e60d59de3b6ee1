"""deploy/prometheus/alerts.yaml: well-formed, and every metric it names is exported by the code."""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

RULES = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yaml"
SUFFIXES = ("", "_total", "_created", "_bucket", "_count", "_sum")
# The failure modes issue 16 asks alerts for, by alert name.
REQUIRED = {
    "TickwireWorkerDown",
    "TickwireNormalizerLagGrowing",
    "TickwireNormalizerDlqRate",
    "TickwireBridgeRetrying",
    "TickwireProducerDegraded",
    "TickwireFeedStale",
    "TickwireBridgePermanentWriteErrors",
    "TickwireBridgePermanentDlq",
}


def rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def exported() -> set[str]:
    """Every metric family name the tickwire processes register (imported and instantiated here)."""
    import tickwire.bridges.metrics
    import tickwire.ingest.health  # noqa: F401 - registers the producer metrics
    from tickwire.normalize.metrics import Metrics
    from tickwire.runtime.metrics import WorkerMetrics

    WorkerMetrics("alert-rules-test")
    with contextlib.suppress(ValueError):  # already registered by another test in this process
        Metrics()
    names: set[str] = set()
    for fam in REGISTRY.collect():
        names.update(fam.name + s for s in SUFFIXES)
    return names


def test_rules_are_well_formed_and_cover_the_failure_modes() -> None:
    rs = rules()
    assert {r["alert"] for r in rs} >= REQUIRED
    for r in rs:
        assert r["expr"].strip(), r["alert"]
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"], r["alert"]
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]


def test_every_metric_named_is_exported_by_the_code() -> None:
    names = exported()
    used = {m for r in rules() for m in re.findall(r"\btickwire_[a-z0-9_]+", r["expr"])}
    assert used, "no tickwire metric in the rules"
    missing = sorted(used - names)
    assert not missing, f"alert rules name metrics no process exports: {missing}"
