"""Test-only "ML" pairer plugin: imports torch when its module is imported, like a real one.

Pairs (j0 j2)(j1 j3) of the four leading b-tagged jets; torch is not used for that.
"""

from __future__ import annotations

import numpy as np
import torch  # noqa: F401  (the import is the point: what an ML plugin costs a worker)

from hhcoffea.constants import FOUR_TAG_N_BJETS
from hhcoffea.pairing import JetColumns, Pairer, PairingResult, all_pairings, result_for_events, select_pairing

__all__ = ["TorchPairer"]


class TorchPairer(Pairer):
    """Pairing code 1 of the four leading b-tagged jets. Takes no options."""

    name = "torch_pairer"
    n_higgs = 2

    def pair(self, jets) -> PairingResult:
        cols = JetColumns(jets)
        subset = cols.leading_btagged(FOUR_TAG_N_BJETS)
        ok = cols.complete(subset)
        subset = subset[ok]
        return result_for_events(len(jets), ok, select_pairing(subset, all_pairings(4), np.ones(len(subset), dtype=np.int64)))
