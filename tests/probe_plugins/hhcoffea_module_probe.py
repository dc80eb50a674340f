"""Test-only pairer plugin: records which modules are imported in the process that pairs.

Each process that calls it writes ``<record_dir>/<pid>.json`` with its pid and, for each of
``WATCHED``, whether it is in ``sys.modules``; then it pairs (j0 j1)(j2 j3) of the four leading
b-tagged jets. Registered by tests/test_registry.py through a hand-written dist-info.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

from hhcoffea.constants import FOUR_TAG_N_BJETS
from hhcoffea.pairing import JetColumns, Pairer, PairingResult, all_pairings, result_for_events, select_pairing

__all__ = ["WATCHED", "ModuleProbePairer"]

WATCHED = (
    "torch",
    "onnxruntime",
    "hhcoffea_torch_pairer",
    "hhcoffea.processors.hh4b",
    "hhcoffea.registry",
    "hhcoffea.plugins.min_dr",
    "hhcoffea.plugins.chi2",
)


class ModuleProbePairer(Pairer):
    """Pairs like leading_pairs; option ``record_dir`` says where to write the module record."""

    name = "module_probe"
    n_higgs = 2

    def __init__(self, record_dir: str, **options) -> None:
        super().__init__(**options)
        self.record_dir = str(record_dir)

    def pair(self, jets) -> PairingResult:
        record = {"pid": os.getpid(), "modules": {m: m in sys.modules for m in WATCHED}}
        with open(os.path.join(self.record_dir, f"{os.getpid()}.json"), "w") as f:
            json.dump(record, f)
        cols = JetColumns(jets)
        subset = cols.leading_btagged(FOUR_TAG_N_BJETS)
        ok = cols.complete(subset)
        subset = subset[ok]
        return result_for_events(len(jets), ok, select_pairing(subset, all_pairings(4), np.zeros(len(subset), dtype=np.int64)))
