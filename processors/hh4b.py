"""The HH->4b coffea processor: four-tag cut, pairing plugins, Higgs candidates, cut-based
selection (PHYSICS.md "Cut-based selection"), histograms, cutflow and truth-pairing counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import awkward as ak
import numpy as np
from coffea import processor

from hhcoffea import constants as c
from hhcoffea.events import event_model, higgs_bquarks
from hhcoffea.histograms import JET_MULTIPLICITY_BINS, NOMINAL, OBSERVABLES, book
from hhcoffea.pairing import Pairer, order_by_scalar_pt
from hhcoffea.selection import (
    four_tag_flat,
    higgs_candidates,
    min_x_wt,
    resonant_pt_cuts,
    x_hh,
)
from hhcoffea.truth import correct_higgs_count, match_quarks

#: cutflow steps per analysis, in order (PHYSICS.md "Cut-based selection")
CUTFLOW_STEPS = {
    "nonresonant": ("all", "four_tag", "paired", "delta_eta_hh", "top_veto", "signal_region"),
    "resonant": ("all", "four_tag", "paired", "resonant_pt", "delta_eta_hh", "top_veto", "signal_region"),
}
SIGNAL_PROCESSES = ("resonant", "nonresonant")
#: generator-particle fields truth matching reads (the rest stay on disk)
TRUTH_MATCHING_FIELDS = ("pdg_id", "mother", "eta", "phi")


@dataclass
class JetScaleVariation:
    """Jet energy scale shift: every jet's pT and mass times (1 ± size)."""

    name: str
    size: float

    def variations(self):
        return ((f"{self.name}_up", 1.0 + self.size), (f"{self.name}_down", 1.0 - self.size))


@dataclass
class HH4bProcessor(processor.ProcessorABC):
    """Composes hhcoffea's columnar pieces into one pass over events.

    pairers: label -> Pairer instance (each fills its own ``pairer`` axis bin).
    luminosity: fb^-1; events are weighted by genWeight x xsec_fb x luminosity / n_generated,
    with ``xsec_fb`` and ``n_generated`` from the fileset metadata (FORMATS.md).
    histogram_systematics: histogram name -> variation names it is filled for (opt-in).
    """

    pairers: dict[str, Pairer]
    luminosity: float = c.REFERENCE_LUMINOSITY
    binning: dict = field(default_factory=dict)
    systematics: list[JetScaleVariation] = field(default_factory=list)
    histogram_systematics: dict[str, list[str]] = field(default_factory=dict)
    jet_pt_min: float = c.FOUR_TAG_PT_MIN
    jet_eta_max: float = c.FOUR_TAG_ETA_MAX

    def __post_init__(self):
        for label, pairer in self.pairers.items():
            if pairer.n_higgs != 2:
                raise ValueError(f"pairer {label!r} builds {pairer.n_higgs} Higgs candidates; HH4bProcessor needs 2")

    def postprocess(self, accumulator):
        return accumulator

    # --- one chunk ---------------------------------------------------------------------------
    def process(self, events):
        meta = dict(events.metadata)
        dataset = meta["dataset"]
        is_signal = meta.get("process") in SIGNAL_PROCESSES
        model = event_model(events, with_truth=is_signal)
        n_in = len(model)
        scale = 1.0
        if meta.get("xsec_fb") is not None and meta.get("n_generated"):
            scale = float(meta["xsec_fb"]) * self.luminosity / float(meta["n_generated"])
        weight = model.weight * scale

        out = {
            "histograms": book(self.binning),
            "cutflow": {dataset: {}},
            "events_in": {dataset: n_in},
        }

        variations = [(NOMINAL, 1.0)]
        for syst in self.systematics:
            variations.extend(syst.variations())
        for variation, factor in variations:
            wanted = self._histograms_for(variation)
            if not wanted:
                continue
            # four-tag and object selection on flat columns for every event; jagged jets only
            # for the events and jets that pass
            pt, eta = model.jet_column("pt"), model.jet_column("eta")
            tagged = four_tag_flat(model.jet_offsets, pt, eta, model.jet_column("btag"),
                                   self.jet_pt_min, self.jet_eta_max, pt_scale=factor)
            good = (pt > self.jet_pt_min / factor) & (np.abs(eta) < self.jet_eta_max)
            jets = model.jets_of(tagged, good, pt_scale=factor)
            self._fill_variation(out, dataset, variation, wanted, jets, tagged, weight, model)
        return out

    def _histograms_for(self, variation: str) -> list[str]:
        names = list(OBSERVABLES) + ["m_h1_m_h2"]
        if variation == NOMINAL:
            return names
        base = variation.rsplit("_", 1)[0]
        return [n for n in names if base in self.histogram_systematics.get(n, ())]

    def _fill_variation(self, out, dataset, variation, wanted, selected, tagged, weight, model):
        """``selected``: the selected jets of the four-tag events (``tagged``), variation applied."""
        nominal = variation == NOMINAL
        w = weight[tagged]
        n_jets = ak.to_numpy(ak.num(selected.pt, axis=1))
        hists = out["histograms"]
        # truth only where it is used: nominal jets of four-tag signal events
        bquarks = None
        if nominal and model.has_truth:
            bquarks = higgs_bquarks(model.genpart_of(tagged, TRUTH_MATCHING_FIELDS))

        for label, pairer in self.pairers.items():
            result = pairer(selected)
            accepted = result.accepted & (result.higgs_jet_indices >= 0).all(axis=(1, 2))
            indices = np.where(accepted[:, None, None], order_by_scalar_pt(result.higgs_jet_indices, selected), -1)
            cand = higgs_candidates(selected, indices)
            m1, m2 = cand["mass"][:, 0], cand["mass"][:, 1]
            delta_eta = np.abs(cand["eta"][:, 0] - cand["eta"][:, 1])
            xhh = x_hh(m1, m2)
            # X_Wt only where it can still matter (after the delta-eta cut): the costly combinatorics
            xwt = np.full(len(w), np.inf)
            need_xwt = accepted & (delta_eta < c.DETA_HH_MAX)
            if need_xwt.any():
                xwt[need_xwt] = min_x_wt(selected[need_xwt], indices[need_xwt])
            res_pt = resonant_pt_cuts(cand["pt"][:, 0], cand["pt"][:, 1], cand["m_hh"])
            eta_ok = accepted & (delta_eta < c.DETA_HH_MAX)
            veto_ok = eta_ok & (xwt >= c.TOP_VETO_X_WT_MIN)
            in_sr = xhh < c.SIGNAL_REGION_X_HH_MAX
            res_eta_ok = eta_ok & res_pt
            res_veto_ok = veto_ok & res_pt
            regions = {
                "four_tag": accepted,
                "preselection": veto_ok,
                "signal": veto_ok & in_sr,
                "control": veto_ok & ~in_sr,
                "resonant_preselection": res_veto_ok,
                "resonant_signal": res_veto_ok & in_sr,
                "resonant_control": res_veto_ok & ~in_sr,
            }
            values = {
                "m_hh": cand["m_hh"],
                "pt_hh": cand["pt_hh"],
                "h1_pt": cand["pt"][:, 0],
                "h2_pt": cand["pt"][:, 1],
                "h1_eta": cand["eta"][:, 0],
                "h2_eta": cand["eta"][:, 1],
                "h1_mass": m1,
                "h2_mass": m2,
                "delta_eta_hh": delta_eta,
                "x_hh": xhh,
                "x_wt": np.where(np.isfinite(xwt), xwt, 1e9),  # no top candidate at all: overflow
            }
            for region, mask in regions.items():
                if not mask.any():
                    continue
                cats = {"dataset": dataset, "region": region, "pairer": label, "systematic": variation}
                for name in wanted:
                    if name == "m_h1_m_h2":
                        hists[name].fill(**cats, m_h1=m1[mask], m_h2=m2[mask], weight=w[mask])
                    elif name == "x_wt":  # computed after the delta-eta cut only
                        m = mask & need_xwt
                        hists[name].fill(**cats, x_wt=values[name][m], weight=w[m])
                    else:
                        hists[name].fill(**cats, **{name: values[name][mask]}, weight=w[mask])

            if not nominal:
                continue
            def count(mask):
                return np.array([mask.sum(), w[mask].sum()], dtype=np.float64)

            common = {
                "all": np.array([len(weight), weight.sum()], dtype=np.float64),
                "four_tag": np.array([len(w), w.sum()], dtype=np.float64),
                "paired": count(accepted),
            }
            masks = {
                "nonresonant": {"delta_eta_hh": eta_ok, "top_veto": veto_ok, "signal_region": veto_ok & in_sr},
                "resonant": {"resonant_pt": accepted & res_pt, "delta_eta_hh": res_eta_ok,
                             "top_veto": res_veto_ok, "signal_region": res_veto_ok & in_sr},
            }
            flows = {
                analysis: {step: common[step] if step in common else count(masks[analysis][step]) for step in order}
                for analysis, order in CUTFLOW_STEPS.items()
            }
            out["cutflow"][dataset][label] = flows

            if bquarks is not None:
                matched, higgs_id = match_quarks(selected, bquarks, n_higgs=2)
                n_correct, full = correct_higgs_count(indices, matched, higgs_id)
                category = np.array(JET_MULTIPLICITY_BINS)[np.clip(n_jets - 4, 0, 2)]
                hists["pairing_truth"].fill(
                    dataset=dataset,
                    pairer=label,
                    n_jets=category,
                    truth=np.where(full, "full", "partial"),
                    correct_higgs=n_correct,
                )
