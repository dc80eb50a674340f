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
from dataclasses import dataclass
from typing import Any, ClassVar

import awkward as ak
import numpy as np

from . import registry
from .kinematics import to_cartesian

__all__ = [
    "JetColumns",
    "Pairer",
    "PairingResult",
    "all_pairings",
    "candidate_four_vectors",
    "gather",
    "get_pairer",
    "leading_btagged",
    "leading_by_btag_then_pt",
    "order_by_scalar_pt",
    "pair_delta_r",
    "result_for_events",
    "select_pairing",
    "unknown_options_error",
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


# --- regular blocks from jagged jets ----------------------------------------------------------


def leading_btagged(jets: ak.Array, n: int) -> np.ndarray:
    """Indices ``(n_events, n)`` of the ``n`` highest-pT b-tagged jets (-1 where fewer)."""
    return JetColumns(jets, fields=()).leading_btagged(n)


def leading_by_btag_then_pt(jets: ak.Array, n: int) -> np.ndarray:
    """Indices ``(n_events, n)`` of the first ``n`` jets ordered by b-tag, then pT (-1 padded)."""
    return JetColumns(jets, fields=()).leading_by_btag_then_pt(n)


def gather(jets: ak.Array, indices: np.ndarray, fields=("pt", "eta", "phi", "mass")) -> dict:
    """Regular float64 arrays of ``fields`` at per-event ``indices`` (NaN where an index is -1 or
    beyond the event's jets, so ``np.arange(k)`` gathers the first k jets NaN-padded)."""
    cols = JetColumns(jets, fields=())
    in_range = indices < cols.counts.reshape((-1,) + (1,) * (indices.ndim - 1))
    return cols.gather(np.where(in_range, indices, -1), fields)


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
    n, n_higgs, _ = higgs_jet_indices.shape  # explicit shape: reshape(0, -1) is ambiguous
    pt = gather(jets, higgs_jet_indices.reshape(n, 2 * n_higgs), ("pt",))["pt"]
    scalar = np.nan_to_num(pt.reshape(higgs_jet_indices.shape)).sum(axis=2)
    order = np.argsort(-scalar, axis=1, kind="stable")
    return np.take_along_axis(higgs_jet_indices, order[:, :, None], axis=1)


# --- fast regular blocks (flat numpy, one awkward conversion per field) -----------------------


def unknown_options_error(pairer_name: str, unknown, accepted) -> TypeError:
    """The ``TypeError`` a pairer raises for options it does not know (names them, lists the valid ones)."""
    return TypeError(
        f"pairer {pairer_name!r} got unknown option(s) {', '.join(map(repr, sorted(unknown)))}; "
        f"it accepts: {', '.join(sorted(accepted)) or 'no options'}"
    )


def leading_btagged_block(jets: ak.Array, n: int = 4):
    """The ``n`` highest-pT b-tagged jets of the events that have them, jet-major.

    Returns ``(ok, subset, block)``: ``ok`` ``(n_events,)`` marks events with ``n`` tags,
    ``subset`` ``(n_ok, n)`` their jet indices, ``block`` ``{field: (n, n_ok)}`` their kinematics.
    The shared start of every pairing on "the four highest-pT b-tagged jets" (PHYSICS.md).
    """
    cols = JetColumns(jets)
    subset = cols.leading_btagged(n)
    ok = cols.complete(subset)
    subset = subset[ok]
    return ok, subset, cols.gather_jet_major(subset, events=ok)


class JetColumns:
    """The jets of many events as flat numpy columns plus per-event offsets.

    Converts each awkward field once; the methods then build regular ``(n_events, k)`` index
    blocks and gather jet quantities with plain numpy (no per-event loop, no further awkward
    calls). Same conventions as :func:`leading_btagged`, :func:`leading_by_btag_then_pt` and
    :func:`gather`, several times faster on large inputs::

        cols = JetColumns(jets)
        idx = cols.leading_btagged(4)          # (n, 4), -1 where fewer
        ok = cols.complete(idx)                # events with all 4
        block = cols.gather(idx[ok])           # dict of (n_ok, 4) float64 arrays
    """

    FIELDS = ("pt", "eta", "phi", "mass")

    def __init__(self, jets: ak.Array, fields=FIELDS) -> None:
        self.n_events = len(jets)
        self.counts = ak.to_numpy(ak.num(jets.pt, axis=1)).astype(np.int64)
        self.starts = np.zeros(self.n_events, dtype=np.int64)
        if self.n_events:
            np.cumsum(self.counts[:-1], out=self.starts[1:])
        self.n_jets = int(self.counts.sum())
        self._jets = jets
        self._columns: dict[str, np.ndarray] = {}
        for field in fields:
            self.column(field)
        self._btag: np.ndarray | None = None
        self._local: np.ndarray | None = None
        self._event: np.ndarray | None = None

    # flat per-jet arrays
    def column(self, field: str) -> np.ndarray:
        """Flat float64 array of ``field`` over all jets of all events."""
        if field not in self._columns:
            flat = ak.to_numpy(ak.flatten(self._jets[field], axis=1))
            self._columns[field] = np.asarray(flat, dtype=np.float64)
        return self._columns[field]

    @property
    def btag(self) -> np.ndarray:
        """Flat bool array: jet is b-tagged."""
        if self._btag is None:
            self._btag = np.asarray(ak.to_numpy(ak.flatten(self._jets.btag, axis=1))) != 0
        return self._btag

    def _event_and_local(self):
        if self._event is None:
            self._event = np.repeat(np.arange(self.n_events, dtype=np.int64), self.counts)
            self._local = np.arange(self.n_jets, dtype=np.int64) - np.repeat(self.starts, self.counts)
        return self._event, self._local

    def _scatter(self, rank: np.ndarray, n: int) -> np.ndarray:
        event, local = self._event_and_local()
        out = np.full((self.n_events, n), -1, dtype=np.int64)
        keep = (rank >= 0) & (rank < n)
        out[event[keep], rank[keep]] = local[keep]
        return out

    def _tag_rank(self):
        """Per jet: rank among the tagged jets of its event (pT order), and tagged count per event."""
        tag = self.btag
        csum = np.cumsum(tag, dtype=np.int64)
        before = np.concatenate(([0], csum))  # tagged jets before flat position i
        tagged_before_event = before[self.starts]
        n_tagged = before[self.starts + self.counts] - tagged_before_event
        rank = csum - 1 - np.repeat(tagged_before_event, self.counts)
        return rank, n_tagged

    def leading_btagged(self, n: int) -> np.ndarray:
        """Like :func:`leading_btagged`: ``(n_events, n)`` indices of the n highest-pT tagged jets."""
        rank, _ = self._tag_rank()
        return self._scatter(np.where(self.btag, rank, -1), n)

    def leading_by_btag_then_pt(self, n: int) -> np.ndarray:
        """Like :func:`leading_by_btag_then_pt`: tagged jets first (pT order), then untagged."""
        rank, n_tagged = self._tag_rank()
        _, local = self._event_and_local()
        # untagged rank = n_tagged + (position among the untagged) = n_tagged + local - tagged-before
        untagged_rank = np.repeat(n_tagged, self.counts) + local - (rank + 1)
        return self._scatter(np.where(self.btag, rank, untagged_rank), n)

    @staticmethod
    def complete(indices: np.ndarray) -> np.ndarray:
        """Events whose index block has no -1 (bool ``(n_events,)``)."""
        return (indices >= 0).all(axis=tuple(range(1, indices.ndim)))

    def gather(self, indices: np.ndarray, fields=FIELDS, events: np.ndarray | None = None) -> dict:
        """Like :func:`gather`: float64 arrays of ``fields`` at ``indices`` (NaN where -1).

        ``events``: which events the rows of ``indices`` belong to when they are a subset (a bool
        mask or event numbers, e.g. ``ok`` for ``indices[ok]``); default: row i is event i.
        """
        starts = self.starts if events is None else self.starts[events]
        shape = (-1,) + (1,) * (indices.ndim - 1)
        valid = indices >= 0
        all_valid = bool(valid.all())
        flat_index = starts.reshape(shape) + indices
        if not all_valid:
            flat_index = np.where(valid, flat_index, 0)
        out = {}
        for field in fields:
            column = self.column(field)
            if column.size == 0:
                out[field] = np.full(indices.shape, np.nan)
                continue
            values = column[flat_index]
            out[field] = values if all_valid else np.where(valid, values, np.nan)
        return out

    def gather_jet_major(self, indices: np.ndarray, fields=FIELDS, events: np.ndarray | None = None) -> dict:
        """Like :meth:`gather` for complete ``(n, k)`` blocks (no -1), but returns ``(k, n)`` arrays.

        Jet-major blocks make ``block[field][positions]`` a copy of whole contiguous rows, which
        is several times faster than picking columns of an ``(n, k)`` array.
        """
        starts = self.starts if events is None else self.starts[events]
        flat_index = np.ascontiguousarray((starts[:, None] + indices).T)
        return {field: self.column(field)[flat_index] for field in fields}


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


def pair_delta_r(eta: np.ndarray, phi: np.ndarray, first, second) -> np.ndarray:
    """ΔR between jets ``first`` and ``second`` of a jet-major block (rows = jets).

    eta, phi: ``(k, n)`` (see :meth:`JetColumns.gather_jet_major`); first, second: integer arrays
    of row positions (any shape S). Returns ``S + (n,)``. Δφ is wrapped into [-π, π] as in
    :func:`hhcoffea.kinematics.delta_r` (equal to it within rounding), about 3x faster.
    """
    dphi = phi[first] - phi[second]
    np.subtract(dphi, (2.0 * np.pi) * np.rint(dphi * (0.5 / np.pi)), out=dphi)
    deta = eta[first] - eta[second]
    np.multiply(dphi, dphi, out=dphi)
    np.multiply(deta, deta, out=deta)
    np.add(dphi, deta, out=dphi)
    return np.sqrt(dphi, out=dphi)
