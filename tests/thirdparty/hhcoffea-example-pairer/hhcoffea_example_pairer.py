"""An example third-party pairer, written only against hhcoffea's public pairing API.

Pairs (j0 j1)(j2 j3) of the four highest-pT b-tagged jets (pairing code 0); events with fewer
than four b-tagged jets are rejected.
"""

from __future__ import annotations

import numpy as np

from hhcoffea.constants import FOUR_TAG_N_BJETS
from hhcoffea.pairing import JetColumns, Pairer, PairingResult, all_pairings, result_for_events, select_pairing


class LeadingPairsPairer(Pairer):
    """(j0 j1)(j2 j3) of the four leading b-tagged jets. Takes no options."""

    name = "leading_pairs"
    n_higgs = 2

    def pair(self, jets) -> PairingResult:
        cols = JetColumns(jets)
        subset = cols.leading_btagged(FOUR_TAG_N_BJETS)
        ok = cols.complete(subset)
        subset = subset[ok]
        choice = np.zeros(len(subset), dtype=np.int64)  # always pairing code 0
        return result_for_events(len(jets), ok, select_pairing(subset, all_pairings(4), choice))
