"""Mass-agnostic D pairing (PHYSICS.md "Pairings", mass-agnostic D).

Minimise D = |m(b1,b2) - k m(b3,b4)| / sqrt(1 + k²), k = 125/120, over the three pairings of the
four highest-pT b-tagged jets.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from hhcoffea.columnar.kinematics import invariant_mass, to_cartesian
from hhcoffea.constants import FOUR_TAG_N_BJETS, MASS_AGNOSTIC_K
from hhcoffea.pairing import (
    Pairer,
    PairingResult,
    all_pairings,
    leading_btagged_block,
    result_for_events,
    select_pairing,
)

__all__ = ["MassAgnosticPairer"]



class MassAgnosticPairer(Pairer):
    """min D = |m(b1,b2) - k m(b3,b4)| / sqrt(1+k²), k = 125/120 (PHYSICS.md "Pairings").

    Works on the four highest-pT b-tagged jets ("all act on the four highest-pT b-tagged jets
    unless stated"). Ordering: (b1,b2) is the candidate with the higher scalar sum of jet pT, and
    (b3,b4) the other. Why: PHYSICS.md defines the leading candidate h1 that way for every pairing,
    the ΔR+D_hh algorithm orders its 120/110 ratio the same way, and k > 1 encodes that the
    pT-leading candidate is reconstructed with the higher mass; ordering by mass instead would
    make k meaningless (D would only ever compare the heavier with k times the lighter). Exact
    scalar-pT equality: the first-listed pair is (b1,b2). Exact ties in D keep the lower pairing
    code. Events with fewer than four b-tagged jets are rejected. Takes no options.
    """

    name = "mass_agnostic"
    n_higgs = 2

    def pair(self, jets: ak.Array) -> PairingResult:
        ok, subset, block = leading_btagged_block(jets, FOUR_TAG_N_BJETS)  # (4, n) each
        pairings = all_pairings(FOUR_TAG_N_BJETS)  # (3, 2, 2)
        first, second = pairings[..., 0], pairings[..., 1]  # (3, 2)

        pt = block["pt"]
        cart = to_cartesian(pt, block["eta"], block["phi"], block["mass"])
        mass = invariant_mass(*(c[first] + c[second] for c in cart))  # (3, 2, n)
        scalar_pt = pt[first] + pt[second]
        second_leads = scalar_pt[:, 1] > scalar_pt[:, 0]  # (3, n); equal: the first pair leads
        m12 = np.where(second_leads, mass[:, 1], mass[:, 0])
        m34 = np.where(second_leads, mass[:, 0], mass[:, 1])
        d = np.abs(m12 - MASS_AGNOSTIC_K * m34) / np.sqrt(1.0 + MASS_AGNOSTIC_K**2)
        choice = np.argmin(d, axis=0)  # first minimum: ties keep the lower code
        return result_for_events(len(jets), ok, select_pairing(subset, pairings, choice))
