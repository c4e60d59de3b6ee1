"""Fuzz seeds: the contract test's inputs of every registered parser (recorded sessions, DBN files,
fixtures), as raw payloads with their envelopes."""

from __future__ import annotations

from itertools import islice

from tests.contract.test_parsers_contract import INPUTS, _items
from tickwire import vendors
from tickwire.fuzz.engine import Seed

PER_INPUT = 1_500  # payloads taken from each input file (the first ones: REST metadata comes first)


def load_seeds(per_input: int = PER_INPUT) -> list[Seed]:
    seeds: list[Seed] = []
    for vendor in vendors.names():
        for kind, files, stream in INPUTS.get(vendor, []):
            if not all(f.is_file() for f in files):
                continue
            for payload, env in islice(_items(vendor, kind, files, stream), per_input):
                seeds.append(Seed(vendor, payload, env))
    return seeds
