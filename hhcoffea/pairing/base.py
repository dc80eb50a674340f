"""The pairing API: what a pairer receives, what it returns, and how it is found.

A pairer is a class registered in the entry-point group ``hhcoffea.pairers``::

    [options.entry_points]
    hhcoffea.pairers =
        my_pairer = my_package.module:MyPairer

It is constructed with the options given in the job file and called on the selected jets of
many events at once (an awkward array, pT-ordered per event, with fields ``pt, eta, phi, mass,
btag``). It returns a :class:`PairingResult`: per event, the jet indices (into that event's jet
list) of each Higgs candidate, and which events it accepts. No per-event Python loop: the
helpers of :mod:`hhcoffea.columnar.jets` turn the jagged jets into regular numpy blocks.

The framework, not the pairer, orders the candidates afterwards (h1 = higher scalar-sum jet pT,
PHYSICS.md "Pairings").
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, ClassVar

import awkward as ak
import numpy as np

from .. import registry

__all__ = ["Pairer", "PairingResult", "get_pairer", "result_for_events", "unknown_options_error"]


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
    #: the jets ``pair`` receives: ``"selected"`` (pT > 40, |eta| < 2.5, the four-tag objects) or
    #: ``"all"`` (every jet with pT >= 20 GeV, e.g. SPA-Net); the indices returned point into them
    jets: ClassVar[str] = "selected"

    def __init__(self, **options: Any) -> None:
        if options:  # subclasses with options consume theirs before calling this
            raise unknown_options_error(self.name, options, ())

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


def unknown_options_error(pairer_name: str, unknown, accepted) -> TypeError:
    """The ``TypeError`` a pairer raises for options it does not know (names them, lists the valid ones)."""
    return registry.unknown_options_error("pairer", pairer_name, unknown, accepted)


def result_for_events(
    n_events: int, rows: np.ndarray, higgs_jet_indices: np.ndarray, accepted: np.ndarray | None = None
) -> PairingResult:
    """A :class:`PairingResult` for ``n_events`` from the result on a subset of them.

    rows: bool mask ``(n_events,)`` or event numbers of the subset the pairer worked on;
    higgs_jet_indices: ``(n_rows, n_higgs, 2)`` for those rows; accepted: optional bool ``(n_rows,)``
    (default: all rows accepted). Every other event is rejected with indices -1.
    """
    n_higgs = higgs_jet_indices.shape[1]
    out = np.full((n_events, n_higgs, 2), -1, dtype=np.int64)
    acc = np.zeros(n_events, dtype=bool)
    if accepted is None:
        out[rows] = higgs_jet_indices
        acc[rows] = True
    else:
        out[rows] = np.where(accepted[:, None, None], higgs_jet_indices, -1)
        acc[rows] = accepted
    return PairingResult(out, acc)
