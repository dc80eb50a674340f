"""The scoring API: what a scorer plugin receives and returns, and how it is found.

A scorer is a class registered in the entry-point group ``hhcoffea.scorers`` (the same registry
as the pairers). It is constructed with the options given in the job file and called on the
paired events of one chunk at once; it returns one score per event in [0, 1] (a numpy array),
batched, with no per-event Python. Models load lazily, once per worker process, so that a
scorer pickles to workers without its inference session.
"""

from __future__ import annotations

import abc
from typing import Any, ClassVar

import numpy as np

from .. import registry

__all__ = ["Scorer", "get_scorer"]


class Scorer(abc.ABC):
    """Base class of event scorers. Subclasses set ``name`` and implement :meth:`score`."""

    name: ClassVar[str] = "?"

    def __init__(self, **options: Any) -> None:
        if options:
            from ..pairing import unknown_options_error

            raise unknown_options_error(self.name, options, ())

    @abc.abstractmethod
    def score(self, events: dict) -> np.ndarray:
        """Scores ``(n,)`` in [0, 1] for ``n`` paired events (a mapping of named columns)."""

    def __call__(self, events: dict) -> np.ndarray:
        scores = np.asarray(self.score(events), dtype=np.float64)
        n = len(next(iter(events.values()))) if events else 0
        if scores.shape != (n,) or (n and not np.all((scores >= 0) & (scores <= 1))):
            raise ValueError(f"scorer {self.name!r} must return {n} scores in [0, 1], got shape {scores.shape}")
        return scores


def get_scorer(name: str, **options: Any) -> Scorer:
    """Construct the registered scorer ``name`` with ``options`` from the job file."""
    return registry.get("scorer", name).loaded(**options)
