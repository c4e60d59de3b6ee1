"""Where tickwire finds its data files: the Avro schemas, ``topics.yaml`` and the shared sample data.

``schemas/`` and ``topics.yaml`` sit at the top of the repository (their one true place) and are copied
into the wheel as package data (``tickwire/_data/``, see ``setup.py``), so an installed tickwire finds
them without a checkout. The shared recorded sessions and DBN files are never packaged: they are found
through ``TICKWIRE_SHARED_DIR``, else ``../shared`` beside the checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
_PACKAGED = _PACKAGE / "_data"  # present in an installed wheel only
REPO_ROOT = _PACKAGE.parent  # the checkout, for an editable install


def data_path(name: str) -> Path:
    """``schemas`` or ``topics.yaml``: ``TICKWIRE_DATA_DIR``, else the wheel's copy, else the checkout."""
    env = os.environ.get("TICKWIRE_DATA_DIR")
    if env:
        return Path(env) / name
    packaged = _PACKAGED / name
    return packaged if packaged.exists() else REPO_ROOT / name


def schema_dir() -> Path:
    return data_path("schemas")


def topics_file() -> Path:
    return data_path("topics.yaml")


def shared_dir() -> Path:
    """The shared sample data (recorded vendor sessions, DBN files); may not exist on a deployed host."""
    env = os.environ.get("TICKWIRE_SHARED_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared"


def recorded_dir() -> Path:
    return shared_dir() / "data" / "recorded"


def dbn_dir() -> Path:
    return shared_dir() / "data" / "dbn"
