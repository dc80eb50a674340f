"""Truth matching of Higgs b quarks to jets, and whether a pairing got each Higgs right.

PHYSICS.md "Objects and preselection": a b quark from h matches a jet within ΔR < 0.4, among all
jets with pT ≥ 20 GeV (not only those the pairers see); an event where one quark matches two jets
is not reconstructable (the seeds drop it from training), nor is one where two quarks share a
jet; an unmatched quark makes its Higgs unreconstructable (partial event).
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from .. import constants as c
from .jets import gather
from .kinematics import delta_r

__all__ = ["correct_higgs_count", "match_quarks"]



def _regular(array: ak.Array, width: int, fill):
    return ak.to_numpy(ak.fill_none(ak.pad_none(array, width, axis=1, clip=True), fill))


def match_quarks(jets: ak.Array, bquarks: ak.Array, n_higgs: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nearest jet (index, or -1) within ΔR < 0.4 for each b quark, its Higgs id, and whether
    any quark has a second jet inside its cone.

    Returns ``matched`` ``(n, 2 n_higgs)`` jet indices, ``higgs_id`` ``(n, 2 n_higgs)`` (-1 pad)
    and ``ambiguous`` ``(n,)``.
    """
    n_quarks = 2 * n_higgs
    q_eta = _regular(bquarks.eta, n_quarks, np.nan).astype(np.float64)
    q_phi = _regular(bquarks.phi, n_quarks, np.nan).astype(np.float64)
    q_higgs = _regular(bquarks.higgs_id, n_quarks, -1).astype(np.int64)
    counts = ak.to_numpy(ak.num(jets.pt, axis=1))
    width = max(int(counts.max()) if len(counts) else 0, 1)
    local = np.arange(width)[None, :]
    index = np.where(local < counts[:, None], local, -1)
    block = gather(jets, index, ("eta", "phi"))
    dr = delta_r(q_eta[:, :, None], q_phi[:, :, None], block["eta"][:, None, :], block["phi"][:, None, :])
    dr = np.where(np.isfinite(dr), dr, np.inf)
    nearest = np.argmin(dr, axis=2)
    best = np.take_along_axis(dr, nearest[:, :, None], axis=2)[:, :, 0]
    matched = np.where(best < c.TRUTH_MATCH_DR, nearest, -1)
    ambiguous = ((dr < c.TRUTH_MATCH_DR).sum(axis=2) > 1).any(axis=1)
    return matched, q_higgs, ambiguous


def correct_higgs_count(higgs_jet_indices: np.ndarray, matched: np.ndarray, higgs_id: np.ndarray,
                        ambiguous: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per event: how many Higgs candidates are the two jets of one true Higgs; and whether the
    event is fully reconstructable (every quark matched, no jet matched twice, and, given
    ``ambiguous`` from :func:`match_quarks`, no quark with two jets in its cone).

    ``higgs_jet_indices`` and ``matched`` must index the same jet list.
    """
    n, n_higgs, _ = higgs_jet_indices.shape
    # jets of true Higgs h: the matched jets of the quarks with higgs_id == h
    true_pairs = np.full((n, n_higgs, 2), -1, dtype=np.int64)
    for h in range(n_higgs):  # loop over the 2 or 3 Higgs bosons, vectorised over events
        is_h = higgs_id == h
        order = np.argsort(~is_h, axis=1, kind="stable")[:, :2]
        jets_h = np.take_along_axis(matched, order, axis=1)
        ok = np.take_along_axis(is_h, order, axis=1).all(axis=1) & (jets_h >= 0).all(axis=1)
        true_pairs[:, h] = np.where(ok[:, None], np.sort(jets_h, axis=1), -1)
    candidates = np.sort(higgs_jet_indices, axis=2)
    valid_truth = (true_pairs >= 0).all(axis=2) & (true_pairs[..., 0] != true_pairs[..., 1])
    same = (candidates[:, :, None, :] == true_pairs[:, None, :, :]).all(axis=3)  # (n, cand, truth)
    same &= valid_truth[:, None, :] & (candidates[:, :, None, 0] >= 0)
    n_correct = same.any(axis=1).sum(axis=1)
    all_matched = (matched >= 0).all(axis=1)
    sorted_matched = np.sort(matched, axis=1)
    distinct = (np.diff(sorted_matched, axis=1) != 0).all(axis=1)
    full = all_matched & distinct
    if ambiguous is not None:
        full &= ~ambiguous
    return n_correct, full
