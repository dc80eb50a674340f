"""min-ΔR pairing (PHYSICS.md "Pairings", min-ΔR).

Of the three pairings of the four highest-pT b-tagged jets, take the one whose higher-pT pair
(pair pT = magnitude of the vector sum of its two jets) has the smallest ΔR between its two
jets. This follows the definition, not the seeds' per-event code (which minimises ΔR of the pair
holding the leading jet). Ties keep the lower pairing code.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from hhcoffea.constants import FOUR_TAG_N_BJETS
from hhcoffea.pairing import (
    Pairer,
    PairingResult,
    all_pairings,
    leading_btagged_block,
    pair_delta_r,
    result_for_events,
    select_pairing,
)

__all__ = ["MinDeltaRPairer"]



class MinDeltaRPairer(Pairer):
    """min-ΔR of the higher-pT pair, on the four highest-pT b-tagged jets (PHYSICS.md "Pairings").

    In each pairing the "higher-pT pair" is the one with the larger pT of the vector sum of its
    two jets (if both are exactly equal, the first-listed pair, the one holding j0). The pairing
    whose higher-pT pair has the smallest ΔR wins; exact ties keep the lower pairing code
    (0 = (j0 j1)(j2 j3), 1 = (j0 j2)(j1 j3), 2 = (j0 j3)(j1 j2)). Events with fewer than four
    b-tagged jets are rejected (accepted False, indices -1). Takes no options.
    """

    name = "min_dr"
    n_higgs = 2

    def pair(self, jets: ak.Array) -> PairingResult:
        ok, subset, block = leading_btagged_block(jets, FOUR_TAG_N_BJETS)  # (4, n_ok) each: rows are j0..j3
        pairings = all_pairings(FOUR_TAG_N_BJETS)  # (3, 2, 2): pairing code, pair, jet
        first, second = pairings[..., 0], pairings[..., 1]  # (3, 2) positions in the subset

        pt, eta, phi = block["pt"], block["eta"], block["phi"]
        px, py = pt * np.cos(phi), pt * np.sin(phi)
        pair_pt2 = (px[first] + px[second]) ** 2 + (py[first] + py[second]) ** 2  # (3, 2, n)
        dr = pair_delta_r(eta, phi, first, second)  # (3, 2, n)
        second_is_higher = pair_pt2[:, 1] > pair_pt2[:, 0]  # equal pT: the first pair
        dr_of_higher = np.where(second_is_higher, dr[:, 1], dr[:, 0])  # (3, n)
        choice = np.argmin(dr_of_higher, axis=0)  # first minimum: ties keep the lower code
        return result_for_events(len(jets), ok, select_pairing(subset, pairings, choice))
