"""Object selection and the cut-based event selection (PHYSICS.md "Objects and preselection",
"Cut-based selection (after pairing)"), as columnar functions.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from .. import constants as c
from .jets import gather
from .kinematics import from_cartesian, invariant_mass, to_cartesian

__all__ = [
    "four_tag",
    "four_tag_flat",
    "good_jets",
    "higgs_candidates",
    "min_x_wt",
    "resonant_pt_cuts",
    "x_hh",
]


def good_jets(jets: ak.Array, pt_min: float = c.FOUR_TAG_PT_MIN, eta_max: float = c.FOUR_TAG_ETA_MAX):
    """Jets with pT > 40 and |eta| < 2.5: the ones the four-tag cut, pairing and top veto use."""
    return jets[(jets.pt > pt_min) & (abs(jets.eta) < eta_max)]


def four_tag(jets: ak.Array, n_required: int = c.FOUR_TAG_N_BJETS) -> np.ndarray:
    """Events with at least four b-tagged good jets (``jets`` already through :func:`good_jets`)."""
    return ak.to_numpy(ak.sum(jets.btag, axis=1) >= n_required)


def four_tag_flat(offsets, pt, eta, btag, pt_min: float = c.FOUR_TAG_PT_MIN,
                  eta_max: float = c.FOUR_TAG_ETA_MAX, n_required: int = c.FOUR_TAG_N_BJETS,
                  pt_scale: float = 1.0) -> np.ndarray:
    """The four-tag cut on flat jet columns (``offsets`` ``(n+1,)``, ``btag`` bool).

    It runs on every event, so the jagged jets then need building only for the few events that
    pass. Plain numpy (a cumulative count of tagged jets read at the event offsets): a numba
    kernel cost every worker process about 3 s of numba start-up for a ~5 ms pass per 100k events.
    ``pt_scale`` applies a jet-energy-scale variation without copying the pT column.
    """
    offsets = np.asarray(offsets, dtype=np.int64)
    with np.errstate(invalid="ignore"):  # NaN kinematics fail the cut
        tagged = np.asarray(btag, dtype=np.bool_) & (np.asarray(pt) * pt_scale > pt_min) & (np.abs(np.asarray(eta)) < eta_max)
    count = np.zeros(len(tagged) + 1, dtype=np.int64)
    np.cumsum(tagged, out=count[1:])
    return (count[offsets[1:]] - count[offsets[:-1]]) >= n_required


def x_hh(m_h1, m_h2):
    """Signal-region discriminant X_hh (PHYSICS.md "Cut-based selection")."""
    return np.hypot(
        (m_h1 - c.SIGNAL_REGION_LEAD_MASS) / (c.SIGNAL_REGION_RESOLUTION * m_h1),
        (m_h2 - c.SIGNAL_REGION_SUBL_MASS) / (c.SIGNAL_REGION_RESOLUTION * m_h2),
    )


def resonant_pt_cuts(pt_lead, pt_subl, m4j):
    """pT_lead > 0.5 m4j - 103 and pT_subl > 0.33 m4j - 73 (resonant analysis only)."""
    a1, b1 = c.RESONANT_LEAD_PT
    a2, b2 = c.RESONANT_SUBL_PT
    return (pt_lead > a1 * m4j + b1) & (pt_subl > a2 * m4j + b2)


def min_x_wt(jets: ak.Array, higgs_jet_indices: np.ndarray, max_jets: int = 10, *,
             higgs_jets: ak.Array | None = None, higgs_positions: np.ndarray | None = None) -> np.ndarray:
    """Smallest X_Wt over all top candidates of each event (inf where none can be formed).

    W candidates: every pair of jets in ``jets`` (good jets, pT > 40, |eta| < 2.5); a top candidate
    adds one jet of the Higgs candidates that is not in the W. Only the ``max_jets`` leading jets
    are combined (10 covers all but a handful of events; the jets are pT-ordered). Events are
    grouped by jet multiplicity so that each group's combinatorics has no padding.

    ``higgs_jets``: the jets ``higgs_jet_indices`` index when they are not ``jets`` (a pairer that
    took all jets); ``higgs_positions`` then gives each Higgs jet's index in ``jets`` (-1: not a
    good jet), which keeps it out of the W candidates it is part of.
    """
    n = len(jets)
    result = np.full(n, np.inf)
    if n == 0:
        return result
    counts = np.minimum(ak.to_numpy(ak.num(jets.pt, axis=1)), max_jets)
    hc = higgs_jet_indices.reshape(n, -1)  # (n, 2 n_higgs) Higgs-candidate jets
    widest = int(counts.max())
    block = gather(jets, np.broadcast_to(np.arange(widest), (n, widest)))  # NaN beyond each count
    hc_block = gather(jets if higgs_jets is None else higgs_jets, hc)
    # -2: no Higgs jet; -1: a Higgs jet that is not among ``jets`` (in no W, still a top's b)
    in_jets = np.where(hc >= 0, hc if higgs_jets is None else higgs_positions.reshape(n, -1), -2)
    for width in np.unique(counts):  # at most max_jets groups, each vectorised over its events
        if width < 3:
            continue
        rows = np.flatnonzero(counts == width)
        result[rows] = _min_x_wt_block(
            {k: v[rows, :width] for k, v in block.items()}, {k: v[rows] for k, v in hc_block.items()}, in_jets[rows]
        )
    return result


def _min_x_wt_block(block: dict, hc_block: dict, hc: np.ndarray) -> np.ndarray:
    width = block["pt"].shape[1]
    px, py, pz, e = to_cartesian(block["pt"], block["eta"], block["phi"], block["mass"])
    first, second = np.triu_indices(width, k=1)
    wpx, wpy, wpz, we = (a[:, first] + a[:, second] for a in (px, py, pz, e))  # (m, P)
    m_w = invariant_mass(wpx, wpy, wpz, we)
    bpx, bpy, bpz, be = to_cartesian(hc_block["pt"], hc_block["eta"], hc_block["phi"], hc_block["mass"])
    m_t = invariant_mass(
        wpx[:, :, None] + bpx[:, None, :],
        wpy[:, :, None] + bpy[:, None, :],
        wpz[:, :, None] + bpz[:, None, :],
        we[:, :, None] + be[:, None, :],
    )  # (m, P, 2 n_higgs)
    in_w = (hc[:, None, :] == first[None, :, None]) | (hc[:, None, :] == second[None, :, None])
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.hypot(
            (m_w[:, :, None] - c.TOP_VETO_W_MASS) / (c.TOP_VETO_RESOLUTION * m_w[:, :, None]),
            (m_t - c.TOP_VETO_TOP_MASS) / (c.TOP_VETO_RESOLUTION * m_t),
        )
    usable = ~in_w & (hc[:, None, :] >= -1) & np.isfinite(x)
    return np.where(usable, x, np.inf).reshape(len(x), x.shape[1] * x.shape[2]).min(axis=1)


def higgs_candidates(jets: ak.Array, higgs_jet_indices: np.ndarray) -> dict:
    """Kinematics of the Higgs candidates and of the di-Higgs system.

    Returns arrays: ``pt, eta, phi, mass`` each ``(n, n_higgs)``, ``scalar_pt`` ``(n, n_higgs)``,
    ``jet_dr`` ``(n, n_higgs)`` (ΔR between the two jets) and ``m_hh, pt_hh`` ``(n,)`` (the mass
    and pT of the sum of all candidates; for HH this is m4j).
    """
    from .kinematics import delta_r

    n, n_higgs, _ = higgs_jet_indices.shape
    block = gather(jets, higgs_jet_indices.reshape(n, 2 * n_higgs))
    px, py, pz, e = (a.reshape(n, n_higgs, 2) for a in to_cartesian(block["pt"], block["eta"], block["phi"], block["mass"]))
    hpx, hpy, hpz, he = px.sum(2), py.sum(2), pz.sum(2), e.sum(2)
    pt, eta, phi, mass = from_cartesian(hpx, hpy, hpz, he)
    jet_pt = block["pt"].reshape(n, n_higgs, 2)
    jet_eta = block["eta"].reshape(n, n_higgs, 2)
    jet_phi = block["phi"].reshape(n, n_higgs, 2)
    pt_hh, _, _, m_hh = from_cartesian(hpx.sum(1), hpy.sum(1), hpz.sum(1), he.sum(1))
    return {
        "pt": pt,
        "eta": eta,
        "phi": phi,
        "mass": mass,
        "scalar_pt": jet_pt.sum(2),
        "jet_dr": delta_r(jet_eta[..., 0], jet_phi[..., 0], jet_eta[..., 1], jet_phi[..., 1]),
        "m_hh": m_hh,
        "pt_hh": pt_hh,
    }
