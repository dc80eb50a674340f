"""The scoring API: what a scorer plugin receives and returns, and how it is found.

A scorer is a class registered in the entry-point group ``hhcoffea.scorers`` (the same registry
as the pairers)::

    [options.entry_points]
    hhcoffea.scorers =
        my_scorer = my_package.module:MyScorer

It is constructed with the options given in the job file (``scorers: {label: {plugin: name,
options: {...}}}``) and called on the paired events of one chunk at once: an
:class:`EventColumns`, a mapping of named numpy columns, one entry per event (the DNN features
of PHYSICS.md "ML selections" by their names in :mod:`hhcoffea.scoring.features`, the
candidate jets' kinematics, X_hh, MET, lepton counts, the dataset's kappa_lambda), plus the
selected jets and the pairer's Higgs-candidate jet indices for scorers that need the jets
themselves. It returns one score per event in [0, 1] (a numpy array), batched, with no
per-event Python. Models load lazily, once per worker process
(:mod:`hhcoffea.ml.session`), so that a scorer pickles to workers without its inference
session.

Selections on scores (``selections:`` in the job file) are in :mod:`hhcoffea.scoring.selections`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from .. import registry

__all__ = ["EventColumns", "Scorer", "get_scorer", "unknown_options_error"]


class EventColumns(dict):
    """Named per-event columns (``{name: (n,) array}``) of ``n_events`` paired events.

    Attributes besides the columns: ``jets`` (the selected jets, awkward, pT-ordered, fields
    ``pt eta phi mass btag``; None when not provided), ``higgs_jet_indices`` (``(n, 2, 2)``
    indices into ``jets``, h1 first, the higher-pT jet first in each candidate) and
    ``metadata`` (the dataset's metadata: ``dataset``, ``process``, ``kappa_lambda``, ...).
    """

    def __init__(self, columns: Mapping[str, np.ndarray], *, n_events: int | None = None, jets=None,
                 higgs_jet_indices: np.ndarray | None = None, metadata: Mapping | None = None) -> None:
        super().__init__(columns)
        if n_events is None:
            n_events = len(next(iter(self.values()))) if self else 0
        self.n_events = int(n_events)
        for name, column in self.items():
            if len(column) != self.n_events:
                raise ValueError(f"column {name!r} has {len(column)} entries for {self.n_events} events")
        self.jets = jets
        self.higgs_jet_indices = higgs_jet_indices
        self.metadata = dict(metadata or {})

    def matrix(self, names, dtype=np.float32) -> np.ndarray:
        """The columns ``names`` side by side, ``(n_events, len(names))`` (a model's input)."""
        missing = [n for n in names if n not in self]
        if missing:
            raise KeyError(f"no column(s) {missing} among the scorer inputs; available: {sorted(self)}")
        out = np.empty((self.n_events, len(names)), dtype=dtype)
        for i, name in enumerate(names):
            out[:, i] = self[name]
        return out

    def subset(self, rows: np.ndarray) -> EventColumns:
        """The events ``rows`` (bool mask or indices) of every column, jets and indices."""
        rows = np.asarray(rows)
        index = np.flatnonzero(rows) if rows.dtype == bool else rows
        return EventColumns(
            {k: v[index] for k, v in self.items()},
            n_events=len(index),
            jets=None if self.jets is None else self.jets[index],
            higgs_jet_indices=None if self.higgs_jet_indices is None else self.higgs_jet_indices[index],
            metadata=self.metadata,
        )

    def __reduce__(self):  # dict subclasses pickle their items but not their attributes
        return (_rebuild, (dict(self), self.n_events, self.jets, self.higgs_jet_indices, self.metadata))


def _rebuild(columns, n_events, jets, indices, metadata) -> EventColumns:
    return EventColumns(columns, n_events=n_events, jets=jets, higgs_jet_indices=indices, metadata=metadata)


def unknown_options_error(scorer_name: str, unknown, accepted) -> TypeError:
    """The ``TypeError`` a scorer raises for options it does not know (names them, lists the valid ones)."""
    return registry.unknown_options_error("scorer", scorer_name, unknown, accepted)


class Scorer(abc.ABC):
    """Base class of event scorers. Subclasses set ``name`` and implement :meth:`score`.

    A subclass with options consumes its own and passes the rest to ``super().__init__`` (which
    rejects leftovers, naming them). Hold models through :class:`hhcoffea.ml.session.OnnxModel`
    (or drop them in ``__getstate__``) so that the scorer pickles without its session.
    """

    name: ClassVar[str] = "?"

    def __init__(self, **options: Any) -> None:
        if options:
            raise unknown_options_error(self.name, options, ())

    @abc.abstractmethod
    def score(self, events: EventColumns) -> np.ndarray:
        """Scores ``(n,)`` in [0, 1] for the ``n`` paired events in ``events``."""

    def __call__(self, events: EventColumns) -> np.ndarray:
        n = events.n_events if isinstance(events, EventColumns) else (len(next(iter(events.values()))) if events else 0)
        if n == 0:  # a chunk with no paired event: nothing to ask the plugin
            return np.zeros(0, dtype=np.float64)
        scores = np.asarray(self.score(events), dtype=np.float64)
        if scores.shape != (n,):
            raise ValueError(f"scorer {self.name!r} must return {n} scores, got shape {scores.shape}")
        if not np.all((scores >= 0) & (scores <= 1)):  # NaN fails this too
            bad = scores[~((scores >= 0) & (scores <= 1))][:3]
            raise ValueError(f"scorer {self.name!r} must return scores in [0, 1], got e.g. {bad.tolist()}")
        return scores


def get_scorer(name: str, **options: Any) -> Scorer:
    """Construct the registered scorer ``name`` with ``options`` from the job file."""
    return registry.get("scorer", name).loaded(**options)
