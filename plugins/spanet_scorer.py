"""The built-in ``spanet`` scorer: SPA-Net's own classification output, p(signal) of
``EVENT/signal`` ``[batch, 2]`` (the official SPANet ONNX interface; PHYSICS.md "ML selections").

Use it in a selection with the ``spanet`` pairer: it scores the jets that pairer paired (all jets
with pT >= 20 GeV, the 10 leading), with exactly the pairer's inputs (``Source_data`` built by
:mod:`hhcoffea.ml.spanet.features`, the same GLOBAL values). It holds a
:class:`~hhcoffea.plugins.spanet.SpanetPairer` configured like the job's, so for the same
``model`` and ``threads`` both run through the one cached ONNX Runtime session of the process
(:mod:`hhcoffea.ml.session`); it pickles without it.

Options: those of the ``spanet`` pairer that concern the model (``model``, ``event_info``,
``globals``, ``batch_size``, ``threads``, ``n_jets``) and ``classification`` (the event-level
output, default ``signal``).
"""

from __future__ import annotations

import numpy as np

from hhcoffea.scoring import EventColumns, Scorer

__all__ = ["SpanetScorer"]

_MODEL_OPTIONS = ("model", "event_info", "globals", "batch_size", "threads", "n_jets")


class SpanetScorer(Scorer):
    """p(signal) of a SPA-Net model's event classification."""

    name = "spanet"

    def __init__(self, classification: str = "signal", **options):
        model_options = {k: options.pop(k) for k in _MODEL_OPTIONS if k in options}
        super().__init__(**options)
        from hhcoffea.plugins.spanet import SpanetPairer

        self.pairer = SpanetPairer(**model_options)
        self.output = f"EVENT/{classification}"
        outputs = [o.name for o in self.pairer.session.get_outputs()]
        if self.output not in outputs:
            raise ValueError(f"spanet scorer: {self.pairer.model} has no output {self.output!r} (outputs: {outputs})")

    def score(self, events: EventColumns) -> np.ndarray:
        from hhcoffea.ml.spanet.features import jet_block, source_data

        if events.jets is None:
            raise ValueError("spanet scorer: needs the paired jets (EventColumns.jets)")
        p = self.pairer
        block = jet_block(events.jets, p.n_jets)
        data = source_data(block, p.event_info.jet_features, log_transform=True)
        out = np.empty(len(data), dtype=np.float64)
        session = p.session  # the pairer's cached session (same model, same threads)
        for start in range(0, len(data), p.batch_size):
            sl = slice(start, start + p.batch_size)
            probs = session.run([self.output], p._feed(data[sl], block["mask"][sl]))[0]
            out[sl] = probs[:, -1] if probs.ndim == 2 else probs
        return np.clip(out, 0.0, 1.0)
