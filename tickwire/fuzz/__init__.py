"""Fuzzing the per-message path: structure-aware mutations (``mutate``), the loop and its counts
(``engine``), hypothesis strategies (``strategies``, needs the dev extras). Seeds and the command line
of ``make fuzz`` live in ``tests/fuzz`` (they name vendors' recorded sessions and fixtures)."""
