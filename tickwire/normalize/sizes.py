"""Sizes of the normalizer's state, for the ``tickwire_normalizer_state_entries{kind}`` gauge.

Every piece of state that input can grow is bounded (parser states, dedupe cursors of ended sessions,
open bars, the symbol cache of the checks); these numbers show it holds in production.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from tickwire.normalize import dedupe

if TYPE_CHECKING:
    from tickwire.normalize.pipeline import Pipeline
    from tickwire.normalize.state import PartitionStore

_CONTAINERS = (dict, list, set, frozenset, tuple)


def entries(obj: Any, depth: int = 3) -> int:
    """Entries held by a parser state: the lengths of its container fields, nested states included."""
    if isinstance(obj, Mapping):
        return len(obj) + (sum(entries(v, depth - 1) for v in obj.values()) if depth > 1 else 0)
    if isinstance(obj, _CONTAINERS):
        return len(obj)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type) and depth > 0:
        return sum(entries(getattr(obj, f.name), depth - 1) for f in dataclasses.fields(obj))
    return 0


def state_sizes(pipeline: Pipeline, stores: Iterable[PartitionStore] = ()) -> dict[str, int]:
    """kind -> entries: ``parser`` (every partition's parser states), ``bars`` (open bar windows),
    ``symbols`` (the checks' cache of canonical symbols), ``dedupe`` (session cursors in ``stores``)."""
    parser = sum(entries(s) for states in pipeline.parser_states.values() for s in states.values())
    bars = sum(len(w) for pb in pipeline._bar_cache.values() for w in pipeline_bars(pb))
    return {
        "parser": parser,
        "bars": bars,
        "symbols": pipeline.checks.cached_symbols(),
        "dedupe": sum(dedupe.cursor_count(st) for st in stores),
    }


def pipeline_bars(pb: Any) -> Iterable[Mapping[int, Any]]:
    bars: Mapping[str, Mapping[int, Any]] = pb.bars
    return bars.values()
