"""χ² pairing for HH (4 jets) and HHH (6 jets) (PHYSICS.md "Pairings", χ²).

Minimise Σ_i (m_bb,i - m_H)² over the ways to pair the jets into n_higgs candidates: by default
the top 4 (HH, 3 pairings) or top 6 (HHH, 15 pairings) jets ordered by b-tag then pT; with
``exhaustive=True`` every 4- (6-) jet subset of the b-tagged jets, as the seeds' author's code does
(they use m_H = 125.10, ``hhcoffea.constants.CHI2_HIGGS_MASS_SEED_CODE``).
"""

from __future__ import annotations

import functools
import itertools
import numbers

import awkward as ak
import numpy as np

from hhcoffea.columnar.kinematics import invariant_mass, to_cartesian
from hhcoffea.constants import CHI2_EXHAUSTIVE_MAX_BTAGGED, CHI2_HIGGS_MASS
from hhcoffea.pairing import (
    JetColumns,
    Pairer,
    PairingResult,
    all_pairings,
    result_for_events,
    unknown_options_error,
)

__all__ = ["Chi2Pairer"]



@functools.cache
def _jet_pairs(k: int) -> tuple[np.ndarray, np.ndarray]:
    """All pairs (a < b) of k jets, ``(n_pairs, 2)``, and the ``(k, k)`` table pair -> its row."""
    pairs = np.array(list(itertools.combinations(range(k), 2)), dtype=np.int64).reshape(-1, 2)
    lookup = np.full((k, k), -1, dtype=np.int64)
    lookup[pairs[:, 0], pairs[:, 1]] = np.arange(len(pairs))
    return pairs, lookup


@functools.cache
def _assignments(k: int, n_higgs: int) -> np.ndarray:
    """Every choice of n_higgs disjoint jet pairs among k jets: ``(n_assign, n_higgs, 2)``.

    Ordered by jet subset (``itertools.combinations`` order), then by pairing code within the
    subset (``all_pairings`` order), so for k = 2 n_higgs it is exactly ``all_pairings(k)``.
    """
    base = all_pairings(2 * n_higgs)
    rows = [np.asarray(subset)[base] for subset in itertools.combinations(range(k), 2 * n_higgs)]
    out = np.concatenate(rows).astype(np.int64) if rows else np.zeros((0, n_higgs, 2), np.int64)
    out.setflags(write=False)
    return out


def _best_assignment(cols: JetColumns, subset: np.ndarray, rows, higgs_mass: float, n_higgs: int):
    """Index of the χ²-minimising assignment of ``subset`` (``(n, k)`` jet indices, all valid)."""
    k = subset.shape[1]
    pairs, lookup = _jet_pairs(k)
    assign = _assignments(k, n_higgs)
    pair_ids = lookup[assign[..., 0], assign[..., 1]]  # (n_assign, n_higgs)
    block = cols.gather_jet_major(subset, events=rows)  # (k, n) each
    cart = to_cartesian(block["pt"], block["eta"], block["phi"], block["mass"])
    a, b = pairs[:, 0], pairs[:, 1]
    mass = invariant_mass(*(c[a] + c[b] for c in cart))  # (n_pairs, n)
    term = (mass - higgs_mass) ** 2
    chi2 = term[pair_ids[:, 0]]
    for h in range(1, n_higgs):
        chi2 += term[pair_ids[:, h]]  # (n_assign, n)
    choice = np.argmin(chi2, axis=0)  # first minimum: ties keep the earlier assignment
    return assign, choice


class Chi2Pairer(Pairer):
    """χ² = Σ_i (m_bb,i - m_H)² minimised over pairings (PHYSICS.md "Pairings", χ²).

    Options:

    - ``n_higgs`` (2 or 3, default 2): HH (4 jets, 3 pairings) or HHH (6 jets, 15 pairings).
    - ``higgs_mass`` (default ``constants.CHI2_HIGGS_MASS`` = 125; the seeds' author uses 125.10).
    - ``exhaustive`` (default False): False pairs the top 2·n_higgs jets ordered by b-tag then pT
      (untagged jets fill in when fewer are tagged; events with fewer jets are rejected). True
      searches every 2·n_higgs-jet subset of the b-tagged jets (the ``max_btagged`` highest-pT
      ones) and every pairing of it; events with fewer than 2·n_higgs b-tagged jets are rejected.
    - ``max_btagged`` (default ``constants.CHI2_EXHAUSTIVE_MAX_BTAGGED`` = 8, exhaustive only): how many b-tagged jets the search considers.

    Exact ties keep the lower pairing code (exhaustive: the earlier subset in
    ``itertools.combinations`` order, then the lower code).
    """

    name = "chi2"
    n_higgs = 2
    OPTIONS = ("n_higgs", "higgs_mass", "exhaustive", "max_btagged")

    def __init__(
        self,
        *,
        n_higgs: int = 2,
        higgs_mass: float = CHI2_HIGGS_MASS,
        exhaustive: bool = False,
        max_btagged: int = CHI2_EXHAUSTIVE_MAX_BTAGGED,
        **unknown,
    ) -> None:
        if unknown:
            raise unknown_options_error(self.name, unknown, self.OPTIONS)
        super().__init__()
        if isinstance(n_higgs, bool) or n_higgs not in (2, 3):
            raise ValueError(f"pairer 'chi2': n_higgs must be 2 or 3, got {n_higgs!r}")
        if not isinstance(higgs_mass, numbers.Real) or not higgs_mass > 0:
            raise ValueError(f"pairer 'chi2': higgs_mass must be a positive number, got {higgs_mass!r}")
        if not isinstance(exhaustive, bool):
            raise ValueError(f"pairer 'chi2': exhaustive must be true or false, got {exhaustive!r}")
        if isinstance(max_btagged, bool) or not isinstance(max_btagged, numbers.Integral) or max_btagged < 2 * n_higgs:
            raise ValueError(
                f"pairer 'chi2': max_btagged must be an integer >= {2 * n_higgs}, got {max_btagged!r}"
            )
        self.n_higgs = int(n_higgs)
        self.higgs_mass = float(higgs_mass)
        self.exhaustive = exhaustive
        self.max_btagged = int(max_btagged)

    def __repr__(self) -> str:
        return (
            f"Chi2Pairer(n_higgs={self.n_higgs}, higgs_mass={self.higgs_mass}, "
            f"exhaustive={self.exhaustive}, max_btagged={self.max_btagged})"
        )

    def pair(self, jets: ak.Array) -> PairingResult:
        cols = JetColumns(jets)
        n_jets = 2 * self.n_higgs
        if not self.exhaustive:
            subset = cols.leading_by_btag_then_pt(n_jets)
            ok = cols.complete(subset)
            subset = subset[ok]
            assign, choice = _best_assignment(cols, subset, ok, self.higgs_mass, self.n_higgs)
            chosen = subset[np.arange(len(subset))[:, None, None], assign[choice]]
            return result_for_events(len(jets), ok, chosen)

        # Exhaustive: events grouped by how many tagged jets they offer (n_jets..max_btagged), so
        # each group is a regular block with no padding to mask. The assignment order restricted
        # to fewer jets is the same, so ties resolve as in one padded search.
        tagged = cols.leading_btagged(self.max_btagged)  # (n, max_btagged), -1 padded
        n_avail = (tagged >= 0).sum(axis=1)
        out = np.full((len(jets), self.n_higgs, 2), -1, dtype=np.int64)
        accepted = n_avail >= n_jets
        for k in np.unique(n_avail[accepted]):
            rows = np.flatnonzero(n_avail == k)
            subset = tagged[rows, :k]
            assign, choice = _best_assignment(cols, subset, rows, self.higgs_mass, self.n_higgs)
            out[rows] = subset[np.arange(len(rows))[:, None, None], assign[choice]]
        return PairingResult(out, accepted)
