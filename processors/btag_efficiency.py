"""The coffea processor of ``hhcoffea btag measure``: counts of selected jets (pT > 40, |eta| < 2.5,
finite events) per working point, flavour, |eta|, pT and tagged, weighted by the generator weight."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from coffea import processor

from hhcoffea import constants as c
from hhcoffea.corrections.btagging import BTagging
from hhcoffea.corrections.btagging.measure import book_counts, fill_counts
from hhcoffea.events import event_model

__all__ = ["BTagEfficiencyProcessor"]


@dataclass
class BTagEfficiencyProcessor(processor.ProcessorABC):
    """``working_points``: dataset -> working-point names to measure (each read with the dataset's
    own tag rule when it is the dataset's working point, else with the table's rule)."""

    btagging: BTagging
    working_points: dict[str, list[str]]
    table: dict
    abseta_edges: list = field(default_factory=list)
    pt_edges: list = field(default_factory=list)
    jet_pt_min: float = c.FOUR_TAG_PT_MIN
    jet_eta_max: float = c.FOUR_TAG_ETA_MAX

    def process(self, events):
        dataset = events.metadata["dataset"]
        setup = self.btagging.for_dataset(dataset)
        counts = book_counts(self.abseta_edges, self.pt_edges, self.working_points.get(dataset, ()))
        model = event_model(events, with_truth=False)
        finite = np.repeat(model.finite_events, np.diff(model.jet_offsets))
        pt, eta = model.jet_column("pt"), model.jet_column("eta")
        with np.errstate(invalid="ignore"):
            good = finite & (pt > self.jet_pt_min) & (np.abs(eta) < self.jet_eta_max)
        weight = np.repeat(model.weight, np.diff(model.jet_offsets))[good]
        flavour = np.abs(model.jet_column("flavour")[good].astype(np.int64))
        for wp in self.working_points.get(dataset, ()):
            own = setup.working_point is not None and setup.working_point.name == wp
            rule = setup.rule(model.layout.name) if own else self.table[wp].rule(model.layout.name, "btag measure")
            tagged = rule.read(model)[good]
            fill_counts(counts, wp, flavour, np.abs(eta[good]), pt[good], tagged, weight)
        return {"counts": counts, "events": {dataset: len(model)}}

    def postprocess(self, accumulator):
        return accumulator
