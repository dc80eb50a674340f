"""The HH->4b coffea processor: four-tag cut, pairing plugins, Higgs candidates, cut-based
selection (PHYSICS.md "Cut-based selection"), histograms, cutflow and truth-pairing counts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import awkward as ak
import numpy as np
from coffea import processor

from hhcoffea import constants as c
from hhcoffea.columnar.selection import (
    four_tag_flat,
    higgs_candidates,
    min_x_wt,
    resonant_pt_cuts,
    x_hh,
)
from hhcoffea.columnar.truth import correct_higgs_count, match_quarks
from hhcoffea.corrections.btagging import BTagging
from hhcoffea.corrections.jes import JetScaleVariation
from hhcoffea.events import event_model, higgs_bquarks, release_chunk_garbage
from hhcoffea.histograms import JET_MULTIPLICITY_BINS, NOMINAL, OBSERVABLES, book
from hhcoffea.pairing import Pairer, PairingResult, order_by_scalar_pt
from hhcoffea.scoring.features import feature_rows, lazy_event_columns
from hhcoffea.scoring.selections import ScoringPlan

__all__ = ["CUTFLOW_STEPS", "HH4bProcessor", "SIGNAL_PROCESSES"]


#: cutflow steps per analysis, in order (PHYSICS.md "Cut-based selection")
CUTFLOW_STEPS = {
    "nonresonant": ("all", "finite_kinematics", "four_tag", "paired", "delta_eta_hh", "top_veto", "signal_region"),
    "resonant": ("all", "finite_kinematics", "four_tag", "paired", "resonant_pt", "delta_eta_hh", "top_veto",
                 "signal_region"),
}
SIGNAL_PROCESSES = ("resonant", "nonresonant")
#: generator-particle fields truth matching reads (the rest stay on disk)
TRUTH_MATCHING_FIELDS = ("pdg_id", "mother", "eta", "phi")


@dataclass
class HH4bProcessor(processor.ProcessorABC):
    """Composes hhcoffea's columnar pieces into one pass over events.

    pairers: label -> Pairer instance (each fills its own ``pairer`` axis bin).
    luminosity: fb^-1; events are weighted by genWeight x xsec_fb x luminosity / n_generated,
    with ``xsec_fb`` and ``n_generated`` from the fileset metadata (FORMATS.md).
    histogram_systematics: histogram name -> variation names it is filled for (opt-in).
    btagging: per-dataset tag rule and method (cut, weight, truth_tag); None: bit 0, cut. Its
    weight variations (``btag_bc_up``, ...) are systematic-axis entries, opt-in like ``jes``.
    """

    pairers: dict[str, Pairer]
    # score-based selections (hhcoffea.scoring.selections) and the pairer whose candidates
    # `hhcoffea export features` collects
    scoring: ScoringPlan | None = None
    feature_export: str | None = None
    luminosity: float = c.REFERENCE_LUMINOSITY
    binning: dict = field(default_factory=dict)
    systematics: list[JetScaleVariation] = field(default_factory=list)
    histogram_systematics: dict[str, list[str]] = field(default_factory=dict)
    jet_pt_min: float = c.FOUR_TAG_PT_MIN
    jet_eta_max: float = c.FOUR_TAG_ETA_MAX
    btagging: BTagging | None = None

    def __post_init__(self):
        for label, pairer in self.pairers.items():
            if pairer.n_higgs != 2:
                raise ValueError(f"pairer {label!r} builds {pairer.n_higgs} Higgs candidates; HH4bProcessor needs 2")

    @property
    def _regions(self) -> tuple[str, ...]:
        from hhcoffea.histograms import REGIONS

        return REGIONS + tuple(self.scoring.regions() if self.scoring is not None else ())

    def postprocess(self, accumulator):
        return accumulator

    # --- what is filled ---------------------------------------------------------------------
    def _variations(self) -> tuple[list[tuple[str, float]], list[str]]:
        """Jet variations ``[(name, pT factor)]`` (nominal first) and the weight-only variations."""
        variations = [(NOMINAL, 1.0)]
        for syst in self.systematics:
            variations.extend(syst.variations())
        # b-tagging variations only reweight events: filled from the nominal selection
        weight_variations = [f"{v}_{d}" for v in (self.btagging.variations if self.btagging else ()) for d in ("up", "down")]
        return variations, weight_variations

    def histogram_variations(self) -> dict[str, list[str]]:
        """Histogram name -> the variations (besides nominal) it is filled for."""
        variations, weight_variations = self._variations()
        names = [v for v, _ in variations[1:]] + weight_variations
        return {name: [v for v in names if name in self._histograms_for(v)] for name in self._histograms_for(NOMINAL)}

    def book(self, datasets) -> dict:
        """Empty histograms of everything the processor fills, seeded with ``datasets``."""
        opted_in = self.histogram_variations()
        hists = book(self.binning, datasets=list(datasets), pairers=list(self.pairers), systematics=opted_in,
                     regions=self._regions)
        if self.scoring is not None:
            hists.update(self.scoring.book(list(datasets), (NOMINAL, *opted_in.get("m_hh", ()))))
        return hists

    # --- one chunk ---------------------------------------------------------------------------
    def process(self, events):
        """One chunk: booked histograms filled directly (the Runner's path)."""
        return self.fill_chunk(events, self.book([events.metadata["dataset"]]))

    def fill_chunk(self, events, histograms, metadata: dict | None = None) -> dict:
        """Select, pair and score one chunk, and fill ``histograms``.

        ``histograms``: name -> anything with ``hist.Hist``'s ``fill(**axes, weight=)``: the booked
        histograms (:meth:`process`), or a :class:`hhcoffea.histograms.FillRecorder` that keeps the
        fill columns for hist.dask (the dask-awkward executor); both see the same fill calls.
        ``metadata``: the chunk's coffea metadata (default ``events.metadata``). Returns the
        output: ``histograms``, cutflow, events_in, excluded (and features when exporting).
        """
        meta = dict(events.metadata if metadata is None else metadata)
        dataset = meta["dataset"]
        is_signal = meta.get("process") in SIGNAL_PROCESSES
        btag = self.btagging.for_dataset(dataset) if self.btagging is not None else None
        model = event_model(events, with_truth=is_signal, tag=btag if btag and btag.working_point else None)
        n_in = len(model)
        scale = 1.0
        if meta.get("xsec_fb") is not None and meta.get("n_generated"):
            scale = float(meta["xsec_fb"]) * self.luminosity / float(meta["n_generated"])
        weight = model.weight * scale
        # NaN/inf jet kinematics or weights: the event is excluded, and counted (never filled)
        finite = model.finite_events

        variations, weight_variations = self._variations()
        out = {
            "histograms": histograms,
            "cutflow": {dataset: {}},
            "events_in": {dataset: n_in},
            "excluded": {dataset: {"nonfinite_kinematics": int(n_in - finite.sum())}},
        }
        if self.feature_export is not None:
            out["features"] = {dataset: []}

        pt, eta = model.jet_column("pt"), model.jet_column("eta")
        # truth tagging weighs every event with >= 4 selected jets instead of cutting on tags
        truth_tag = btag is not None and btag.method == "truth_tag"
        cut_tags = np.ones(len(pt), dtype=bool) if truth_tag else model.jet_column("btag")
        for variation, factor in variations:
            wanted = self._histograms_for(variation)
            if not wanted:
                continue
            # four-tag and object selection on flat columns for every event; jagged jets only
            # for the events and jets that pass
            tagged = four_tag_flat(model.jet_offsets, pt, eta, cut_tags, self.jet_pt_min, self.jet_eta_max,
                                   pt_scale=factor) & finite
            with np.errstate(invalid="ignore"):
                good = (pt * factor > self.jet_pt_min) & (np.abs(eta) < self.jet_eta_max)
            take, counts = model.jet_entries(tagged, good)
            jets = model.jets_at(take, counts, pt_scale=factor)
            weights = {variation: weight[tagged]}
            if btag is not None and btag.weighted:
                weights, jets = btag.event_weights(
                    jets, weight[tagged], meta, meta.get("entrystart", 0) + np.flatnonzero(tagged), variation,
                    with_variations=variation == NOMINAL and bool(weight_variations), n_required=c.FOUR_TAG_N_BJETS)
            elif variation == NOMINAL:
                weights.update({v: weights[variation] for v in weight_variations})
            self._fill_variation(out, dataset, variation, wanted, jets, take, tagged, weight, finite, model, weights)
        release_chunk_garbage()  # memory bounded by the chunk size, not by the run
        return out

    def _histograms_for(self, variation: str) -> list[str]:
        names = list(OBSERVABLES) + ["m_h1_m_h2"]
        if variation == NOMINAL:
            return names
        base = variation.rsplit("_", 1)[0]
        return [n for n in names if base in self.histogram_systematics.get(n, ())]

    def _pair(self, pairer: Pairer, jets) -> PairingResult:
        if len(jets) == 0:  # a chunk where nothing passed four-tag: nothing to ask the plugin
            return PairingResult(np.full((0, pairer.n_higgs, 2), -1, dtype=np.int64), np.zeros(0, dtype=bool))
        return pairer(jets)

    def _fill_variation(self, out, dataset, variation, wanted, selected, selected_take, tagged, weight, finite, model,
                        weights):
        """``selected``: the selected jets of the four-tag events (``tagged``), variation applied;
        ``selected_take``: their flat file indices (:meth:`EventModel.jet_entries`); ``weights``:
        the events' weights for ``variation`` and for any weight-only variations."""
        nominal = variation == NOMINAL
        w = weights[variation]
        fills = [(variation, wanted, w)] + [(v, self._histograms_for(v), wv) for v, wv in weights.items() if v != variation]
        hists = out["histograms"]
        truth = self._truth(model, tagged, selected, selected_take) if nominal and model.has_truth else None

        good_jets = selected
        for label, pairer in self.pairers.items():
            # a pairer may pair all jets >= 20 GeV (``jets = "all"``): from here on ``selected`` is
            # the jets its indices point into; the top veto's W candidates stay the good jets
            selected, pairer_take, pairer_starts, in_good = self._jets_for(pairer, variation, good_jets, selected_take,
                                                                           tagged, model)
            result = self._pair(pairer, selected)
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
                higgs_jets = {} if in_good is None else {
                    "higgs_jets": selected[need_xwt], "higgs_positions": self._at_jets(in_good, pairer_starts, indices)[need_xwt]}
                xwt[need_xwt] = min_x_wt(good_jets[need_xwt], indices[need_xwt], **higgs_jets)
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
            if self.scoring is not None or self.feature_export == label:
                regions.update(self._score(out, dataset, label, fills, regions, cand, model, tagged, selected, indices))
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
                for name in wanted:
                    # one fill per histogram: weight-only variations repeat the values with their weights
                    systs = [(syst, sw) for syst, names, sw in fills if name in names]
                    m = mask & need_xwt if name == "x_wt" else mask  # X_Wt: computed after the delta-eta cut only
                    n = int(m.sum())
                    cats = {"dataset": dataset, "region": region, "pairer": label,
                            "systematic": systs[0][0] if len(systs) == 1 else np.repeat([s for s, _ in systs], n)}
                    sw = np.concatenate([w_[m] for _, w_ in systs])
                    if name == "m_h1_m_h2":
                        hists[name].fill(**cats, m_h1=np.tile(m1[m], len(systs)), m_h2=np.tile(m2[m], len(systs)), weight=sw)
                    else:
                        hists[name].fill(**cats, **{name: np.tile(values[name][m], len(systs))}, weight=sw)

            if not nominal:
                continue
            steps = {
                "all": None, "finite_kinematics": None, "four_tag": None, "paired": accepted,
                "resonant_pt": accepted & res_pt, "delta_eta_hh": eta_ok, "top_veto": veto_ok,
                "signal_region": veto_ok & in_sr,
            }
            resonant = {"resonant_pt": accepted & res_pt, "delta_eta_hh": res_eta_ok,
                        "top_veto": res_veto_ok, "signal_region": res_veto_ok & in_sr}
            flows = {}
            for analysis, order in CUTFLOW_STEPS.items():
                masks = {**steps, **resonant} if analysis == "resonant" else steps
                # a fresh array per cell: coffea adds accumulators in place, so a shared array
                # would be counted once per analysis
                flows[analysis] = {step: self._count(step, masks[step], weight, finite, w) for step in order}
            out["cutflow"][dataset][label] = flows

            if truth is not None:
                self._fill_truth(hists, dataset, label, indices, truth, pairer_take, pairer_starts)

    def _score(self, out, dataset, label, fills, regions, cand, model, tagged, selected, indices) -> dict:
        """Masks of the score-based selections with a numeric threshold (their scores and m_hh
        go into ``score``/``m_hh_score``), and this chunk's feature-table rows when exporting."""
        columns = lazy_event_columns(model, tagged, selected, indices, cand)
        masks = {}
        if self.scoring is not None:
            # every systematic the histograms are filled for: jet variations, weight-only variations
            masks = self.scoring.fill(out["histograms"], dataset=dataset, pairer=label, regions=regions, columns=columns,
                                      m_hh=cand["m_hh"], fills=[(syst, sw) for syst, names, sw in fills if names])
        variation, w = fills[0][0], fills[0][2]
        if variation == NOMINAL and label == self.feature_export:
            out["features"][dataset].append(feature_rows(columns(), {**regions, **masks}, w, tagged))
        return masks

    @staticmethod
    def _count(step, mask, weight, finite, w) -> np.ndarray:
        if step == "all":  # weights that are not finite are excluded at the next step
            return np.array([len(weight), weight[finite].sum()], dtype=np.float64)
        if step == "finite_kinematics":
            return np.array([finite.sum(), weight[finite].sum()], dtype=np.float64)
        if step == "four_tag":
            return np.array([len(w), w.sum()], dtype=np.float64)
        return np.array([mask.sum(), w[mask].sum()], dtype=np.float64)

    @staticmethod
    def _truth(model, tagged, selected, selected_take):
        """Truth matching of the four-tag events: quarks to all jets with pT >= 20 GeV
        (PHYSICS.md "Objects and preselection"), and the map from selected jets into those."""
        bquarks = higgs_bquarks(model.genpart_of(tagged, TRUTH_MATCHING_FIELDS))
        with np.errstate(invalid="ignore"):
            considered_mask = model.jet_column("pt") >= c.JET_PT_CONSIDERED
        take, counts = model.jet_entries(tagged, considered_mask)
        considered = model.jets_at(take, counts)
        matched, higgs_id, ambiguous = match_quarks(considered, bquarks, n_higgs=2)
        starts = np.cumsum(counts, dtype=np.int64) - counts
        # file jet index -> its position among the event's considered jets
        position = np.full(len(model.jet_column("pt")), -1, dtype=np.int64)
        position[take] = np.arange(len(take)) - np.repeat(starts, counts)
        selected_counts = ak.to_numpy(ak.num(selected.pt, axis=1))
        selected_starts = np.cumsum(selected_counts, dtype=np.int64) - selected_counts
        return {
            "matched": matched, "higgs_id": higgs_id, "ambiguous": ambiguous, "n_jets_all": counts,
            "n_jets_selected": selected_counts, "position": position, "selected_take": selected_take,
            "selected_starts": selected_starts,
        }

    def _jets_for(self, pairer, variation, good_jets, good_take, tagged, model):
        """The jets ``pairer`` pairs, their flat file indices and per-event starts, and (for
        ``jets = "all"``) each one's position among the good jets (-1: not a good jet)."""
        good_counts = ak.to_numpy(ak.num(good_jets.pt, axis=1))
        good_starts = np.cumsum(good_counts, dtype=np.int64) - good_counts
        if getattr(pairer, "jets", "selected") != "all":
            return good_jets, good_take, good_starts, None
        factor = dict(v for s in self.systematics for v in s.variations()).get(variation, 1.0)
        with np.errstate(invalid="ignore"):
            considered = model.jet_column("pt") * factor >= c.JET_PT_CONSIDERED
        take, counts = model.jet_entries(tagged, considered)
        in_good = np.full(len(model.jet_column("pt")), -1, dtype=np.int64)
        in_good[good_take] = np.arange(len(good_take)) - np.repeat(good_starts, good_counts)
        return model.jets_at(take, counts, pt_scale=factor), take, np.cumsum(counts, dtype=np.int64) - counts, in_good[take]

    @staticmethod
    def _at_jets(per_jet: np.ndarray, starts: np.ndarray, indices: np.ndarray) -> np.ndarray:
        """``per_jet`` (flat, one value per paired jet) at the candidates' jets; -1 where none."""
        if not len(per_jet):
            return np.full(indices.shape, -1, dtype=np.int64)
        return np.where(indices >= 0, per_jet[starts[:, None, None] + np.maximum(indices, 0)], -1)

    @staticmethod
    def _fill_truth(hists, dataset, label, indices, truth, take, starts):
        # the pairer's candidates (indices into its jets: file indices ``take``), as positions
        # among the considered jets
        file_index = HH4bProcessor._at_jets(take, starts, indices)
        as_considered = np.where(file_index >= 0, truth["position"][np.maximum(file_index, 0)], -1)
        n_correct, full = correct_higgs_count(as_considered, truth["matched"], truth["higgs_id"], truth["ambiguous"])
        bins = np.array(JET_MULTIPLICITY_BINS)
        hists["pairing_truth"].fill(
            dataset=dataset,
            pairer=label,
            n_jets=bins[np.clip(truth["n_jets_selected"] - 4, 0, 2)],
            n_jets_all=bins[np.clip(truth["n_jets_all"] - 4, 0, 2)],
            truth=np.where(full, "full", "partial"),
            correct_higgs=n_correct,
        )
