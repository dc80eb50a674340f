"""The pairing API: what a pairer receives, what it returns, and the helpers to write one.

A pairer is a class registered in the entry-point group ``hhcoffea.pairers``::

    [options.entry_points]
    hhcoffea.pairers =
        my_pairer = my_package.module:MyPairer

It is constructed with the options given in the job file and called on the selected jets of
many events at once (an awkward array, pT-ordered per event, with fields ``pt, eta, phi, mass,
btag``). It returns a :class:`PairingResult`: per event, the jet indices (into that event's jet
list) of each Higgs candidate, and which events it accepts. No per-event Python loop: the helpers
below turn the jagged jets into regular ``(n_events, n)`` numpy blocks.

The framework, not the pairer, orders the candidates afterwards (h1 = higher scalar-sum jet pT,
PHYSICS.md "Pairings").
"""

from __future__ import annotations

import abc
import functools
import itertools
from dataclasses import dataclass
from typing import Any, ClassVar

import awkward as ak
import numpy as np

from . import registry
from .kinematics import to_cartesian

__all__ = [
    "Pairer",
    "PairingResult",
    "all_pairings",
    "candidate_four_vectors",
    "gather",
    "get_pairer",
    "leading_btagged",
    "leading_by_btag_then_pt",
    "order_by_scalar_pt",
    "select_pairing",
]


@dataclass(frozen=True)
class PairingResult:
    """Output of a pairer for ``n`` events.

    higgs_jet_indices: int64 ``(n, n_higgs, 2)``; jet indices of each candidate, -1 where rejected.
    accepted: bool ``(n,)``; False for events the pairer rejects (e.g. no pairing in the ΔR windows).
    """

    higgs_jet_indices: np.ndarray
    accepted: np.ndarray

    def __post_init__(self) -> None:
        idx, acc = self.higgs_jet_indices, self.accepted
        if idx.ndim != 3 or idx.shape[2] != 2 or acc.shape != (idx.shape[0],):
            raise ValueError(
                f"PairingResult wants indices (n, n_higgs, 2) and accepted (n,), got "
                f"{idx.shape} and {acc.shape}"
            )


class Pairer(abc.ABC):
    """Base class of pairing algorithms. Subclasses set ``name`` and ``n_higgs``."""

    name: ClassVar[str] = "?"
    n_higgs: ClassVar[int] = 2

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"pairer {self.name!r} takes no options, got {sorted(options)}")

    @abc.abstractmethod
    def pair(self, jets: ak.Array) -> PairingResult:
        """Pair the jets of many events (see the module docstring)."""

    def __call__(self, jets: ak.Array) -> PairingResult:
        result = self.pair(jets)
        n = len(jets)
        if result.higgs_jet_indices.shape[:2] != (n, self.n_higgs):
            raise ValueError(
                f"pairer {self.name!r} returned indices of shape {result.higgs_jet_indices.shape} "
                f"for {n} events with {self.n_higgs} Higgs candidates"
            )
        return result


def get_pairer(name: str, **options: Any) -> Pairer:
    """Construct the registered pairer ``name`` with ``options`` from the job file."""
    return registry.get("pairer", name).loaded(**options)


# --- regular blocks from jagged jets ----------------------------------------------------------


def leading_btagged(jets: ak.Array, n: int) -> np.ndarray:
    """Indices ``(n_events, n)`` of the ``n`` highest-pT b-tagged jets (-1 where fewer)."""
    local = ak.local_index(jets.pt, axis=1)
    tagged = local[jets.btag != 0][:, :n]
    padded = ak.fill_none(ak.pad_none(tagged, n, axis=1, clip=True), -1)
    return ak.to_numpy(padded).astype(np.int64)


def leading_by_btag_then_pt(jets: ak.Array, n: int) -> np.ndarray:
    """Indices ``(n_events, n)`` of the first ``n`` jets ordered by b-tag, then pT (-1 padded)."""
    local = ak.local_index(jets.pt, axis=1)
    # jets arrive pT-ordered; a stable sort on "not tagged" keeps pT order within each group
    order = ak.argsort(jets.btag == 0, axis=1, stable=True)
    chosen = local[order][:, :n]
    padded = ak.fill_none(ak.pad_none(chosen, n, axis=1, clip=True), -1)
    return ak.to_numpy(padded).astype(np.int64)


def gather(jets: ak.Array, indices: np.ndarray, fields=("pt", "eta", "phi", "mass")) -> dict:
    """Regular float64 arrays of ``fields`` at per-event ``indices`` (NaN where index is -1)."""
    counts = ak.to_numpy(ak.num(jets.pt, axis=1))
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    valid = (indices >= 0) & (indices < counts.reshape((-1,) + (1,) * (indices.ndim - 1)))
    flat_index = np.where(valid, starts.reshape((-1,) + (1,) * (indices.ndim - 1)) + indices, 0)
    out = {}
    for field in fields:
        flat = ak.to_numpy(ak.flatten(jets[field], axis=1)).astype(np.float64)
        if flat.size == 0:
            out[field] = np.full(indices.shape, np.nan)
            continue
        out[field] = np.where(valid, flat[flat_index], np.nan)
    return out


# --- pairings ---------------------------------------------------------------------------------


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
    pt = gather(jets, higgs_jet_indices.reshape(len(higgs_jet_indices), -1), ("pt",))["pt"]
    scalar = np.nan_to_num(pt.reshape(higgs_jet_indices.shape)).sum(axis=2)
    order = np.argsort(-scalar, axis=1, kind="stable")
    return np.take_along_axis(higgs_jet_indices, order[:, :, None], axis=1)


def _subsets(n_total: int, k: int) -> np.ndarray:
    return np.array(list(itertools.combinations(range(n_total), k)), dtype=np.int64)
