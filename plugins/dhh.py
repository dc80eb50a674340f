"""ΔR windows + min-D_hh pairing, the ATLAS resolved HH->4b algorithm (PHYSICS.md "Pairings").

On the four highest-pT b-tagged jets, a pairing is accepted only if the ΔR between the jets of
its leading and subleading candidates (ordered by scalar-sum jet pT) lies inside m4j-dependent
windows; among accepted pairings the one with the smallest
D_hh = |m_h1 - (120/110) m_h2| / sqrt(1 + (120/110)^2) wins. Events with no accepted pairing are
rejected.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from hhcoffea.columnar.kinematics import invariant_mass, to_cartesian
from hhcoffea.constants import (
    DHH_HIGH_M4J_DR_MAX,
    DHH_LEAD_WINDOW,
    DHH_M4J_SPLIT,
    DHH_MASS_RATIO,
    DHH_SUBL_WINDOW,
    FOUR_TAG_N_BJETS,
)
from hhcoffea.pairing import (
    Pairer,
    PairingResult,
    all_pairings,
    leading_btagged_block,
    pair_delta_r,
    result_for_events,
    select_pairing,
)

__all__ = ["DeltaRMinDhhPairer"]



def _in_window(dr, inv_m4j, window):
    """a/m4j + b < dR < c/m4j + d with window = (a, b, c, d)."""
    a, b, c, d = window
    return (dr > a * inv_m4j + b) & (dr < c * inv_m4j + d)


class DeltaRMinDhhPairer(Pairer):
    """ΔR windows + min D_hh on the four highest-pT b-tagged jets (PHYSICS.md "Pairings").

    m4j is the mass of the four jets. For each of the three pairings, lead/subl are its two
    candidates ordered by scalar-sum jet pT (exact equality: the first-listed pair is lead).
    Accepted if

    - m4j < 1250: 360/m4j - 0.5 < ΔR_lead < 653/m4j + 0.475 and 235/m4j < ΔR_subl < 875/m4j + 0.35
    - otherwise (m4j >= 1250; PHYSICS.md writes "> 1250", the boundary itself has measure zero):
      0 < ΔR_lead < 1 and 0 < ΔR_subl < 1

    Among the accepted pairings the smallest D_hh = |m_lead - r m_subl| / sqrt(1 + r^2),
    r = 120/110, wins; exact ties keep the lower pairing code. Events with fewer than four
    b-tagged jets or with no accepted pairing are rejected (accepted False, indices -1).
    Takes no options.
    """

    name = "dhh"
    n_higgs = 2

    def pair(self, jets: ak.Array) -> PairingResult:
        ok, subset, block = leading_btagged_block(jets, FOUR_TAG_N_BJETS)  # (4, n) each
        pairings = all_pairings(FOUR_TAG_N_BJETS)  # (3, 2, 2)
        first, second = pairings[..., 0], pairings[..., 1]  # (3, 2)

        pt, eta, phi = block["pt"], block["eta"], block["phi"]
        cart = to_cartesian(pt, eta, phi, block["mass"])  # each (4, n)
        m4j = invariant_mass(*(c.sum(axis=0) for c in cart))  # (n,)
        mass = invariant_mass(*(c[first] + c[second] for c in cart))  # (3, 2, n)
        scalar_pt = pt[first] + pt[second]
        dr = pair_delta_r(eta, phi, first, second)

        second_leads = scalar_pt[:, 1] > scalar_pt[:, 0]  # (3, n); equal: the first pair leads
        dr_lead = np.where(second_leads, dr[:, 1], dr[:, 0])
        dr_subl = np.where(second_leads, dr[:, 0], dr[:, 1])
        m_lead = np.where(second_leads, mass[:, 1], mass[:, 0])
        m_subl = np.where(second_leads, mass[:, 0], mass[:, 1])

        with np.errstate(divide="ignore"):
            inv_m4j = 1.0 / m4j
        low = _in_window(dr_lead, inv_m4j, DHH_LEAD_WINDOW) & _in_window(dr_subl, inv_m4j, DHH_SUBL_WINDOW)
        high = (dr_lead > 0) & (dr_lead < DHH_HIGH_M4J_DR_MAX) & (dr_subl > 0) & (dr_subl < DHH_HIGH_M4J_DR_MAX)
        in_windows = np.where(m4j < DHH_M4J_SPLIT, low, high)  # (3, n)

        d_hh = np.abs(m_lead - DHH_MASS_RATIO * m_subl) / np.sqrt(1.0 + DHH_MASS_RATIO**2)
        d_hh = np.where(in_windows, d_hh, np.inf)
        choice = np.argmin(d_hh, axis=0)  # first minimum: ties keep the lower code
        accepted = in_windows.any(axis=0)
        return result_for_events(len(jets), ok, select_pairing(subset, pairings, choice), accepted)
