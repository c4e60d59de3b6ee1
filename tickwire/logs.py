"""Logging set-up: one line per event, key=value context, secrets never formatted."""

from __future__ import annotations

import logging
import os
import sys


def setup(level: str | None = None) -> None:
    lvl = (level or os.environ.get("TICKWIRE_LOG_LEVEL", "INFO")).upper()
    logging.basicConfig(
        level=lvl,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def kv(**fields: object) -> str:
    """Render key=value context for a log message: log.info("connected %s", kv(stream=s, url=u))."""
    return " ".join(f"{k}={v}" for k, v in fields.items())
