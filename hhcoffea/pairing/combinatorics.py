"""Pairings of jets into Higgs candidates: every pairing of k jets, their four-vectors, and the
candidate order of PHYSICS.md "Pairings" (pairing codes; h1 = higher scalar-sum jet pT).
"""

from __future__ import annotations

import functools

import awkward as ak
import numpy as np

from ..columnar.jets import gather
from ..columnar.kinematics import to_cartesian

__all__ = ["all_pairings", "candidate_four_vectors", "order_by_scalar_pt", "select_pairing"]


@functools.cache
def all_pairings(n_jets: int) -> np.ndarray:
    """Every way to split ``n_jets`` (even) jets into pairs: int array ``(n_pairings, n_jets/2, 2)``.

    For four jets the order is the pairing code of PHYSICS.md: 0 = (j0 j1)(j2 j3),
    1 = (j0 j2)(j1 j3), 2 = (j0 j3)(j1 j2); six jets give 15 pairings.
    """
    if n_jets % 2:
        raise ValueError(f"cannot pair an odd number of jets ({n_jets})")

    def partitions(items):
        if not items:
            yield []
            return
        first, rest = items[0], items[1:]
        for i, partner in enumerate(rest):
            for tail in partitions(rest[:i] + rest[i + 1 :]):
                yield [(first, partner)] + tail

    result = np.array(list(partitions(list(range(n_jets)))), dtype=np.int64)
    result.setflags(write=False)
    return result


def candidate_four_vectors(block: dict, pairings: np.ndarray):
    """Four-vectors of every candidate of every pairing.

    block: ``gather`` output for ``(n, k)`` jets; pairings: ``(P, H, 2)`` indices into ``k``.
    Returns (px, py, pz, E), each ``(n, P, H)``.
    """
    cart = to_cartesian(block["pt"], block["eta"], block["phi"], block["mass"])
    first, second = pairings[..., 0], pairings[..., 1]
    return tuple(c[:, first] + c[:, second] for c in cart)


def select_pairing(subset: np.ndarray, pairings: np.ndarray, choice: np.ndarray) -> np.ndarray:
    """Jet indices ``(n, H, 2)`` of pairing ``choice[i]`` applied to ``subset[i]`` (``(n, k)``)."""
    chosen = pairings[choice]  # (n, H, 2) positions within the subset
    n = subset.shape[0]
    return subset[np.arange(n)[:, None, None], chosen]


def order_by_scalar_pt(higgs_jet_indices: np.ndarray, jets: ak.Array) -> np.ndarray:
    """Reorder candidates so that h1 has the highest scalar-sum jet pT (PHYSICS.md "Pairings")."""
    n, n_higgs, _ = higgs_jet_indices.shape  # explicit shape: reshape(0, -1) is ambiguous
    pt = gather(jets, higgs_jet_indices.reshape(n, 2 * n_higgs), ("pt",))["pt"]
    scalar = np.nan_to_num(pt.reshape(higgs_jet_indices.shape)).sum(axis=2)
    order = np.argsort(-scalar, axis=1, kind="stable")
    return np.take_along_axis(higgs_jet_indices, order[:, :, None], axis=1)
