"""Example third-party hhcoffea scorers, written only against the public API (hhcoffea.scoring).

``mass_window``: exp(-X_hh^2 / (2 width^2)); with the default width 1.6 the selection
``score > exp(-1/2)`` is the cut-based signal region X_hh < 1.6 (PHYSICS.md "Cut-based selection").
``constant``: the same score ``value`` for every event (a selection passes all events or none).
"""

from __future__ import annotations

import numpy as np

from hhcoffea.scoring import Scorer

__all__ = ["ConstantScorer", "MassWindowScorer"]


class MassWindowScorer(Scorer):
    """1 at the centre of the (m_h1, m_h2) signal region, falling with X_hh."""

    name = "mass_window"

    def __init__(self, width: float = 1.6, **options):
        super().__init__(**options)
        self.width = float(width)

    def score(self, events):
        return np.exp(-0.5 * (events["x_hh"] / self.width) ** 2)


class ConstantScorer(Scorer):
    """``value`` for every event."""

    name = "constant"

    def __init__(self, value: float = 0.5, **options):
        super().__init__(**options)
        self.value = float(value)

    def score(self, events):
        return np.full(events.n_events, self.value)
