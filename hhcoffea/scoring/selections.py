"""Selections on scores: a pairer's candidates, a scorer's output and a threshold p_th.

Job file::

    scorers:                      # label: {plugin: name, options: {...}}; plugin defaults to the label
      dnn: {}                     # the built-in DNN, its shipped non-resonant model
    selections:
      dnn_min_dr:
        pairer: min_dr            # a label of the job's pairers
        scorer: dnn               # a label of the job's scorers
        threshold: optimise       # or a number: events with score > p_th pass
        after: four_tag           # the processor region the cut applies in (default four_tag)
        signal: [hh_k1]           # datasets S/sqrt(B) is computed on (default: every signal process)
        backgrounds: [qcd_dl1r]   # (default: every other dataset)
        min_background: 1.0       # optimise: smallest weighted background yield allowed above p_th
        min_background_mc: 10     # ... and smallest effective number of MC events, (sum w)^2/sum w^2

Each selection is a region of the histograms, named like the selection, filled beside the
cut-based regions (the processor books them: :meth:`ScoringPlan.regions`). The processor
scores every paired event of the selection's pairer and fills two histograms per selection:
``score`` (dataset, selection, systematic, score) and ``m_hh_score`` (dataset, selection,
systematic, m_hh, score). Both score axes have :data:`SCORE_EDGES`, uniform in logit(p), so the
thresholds near 1 that DNNs need are resolved; scores are filled one ulp low, so a bin ``k``
holds ``e_k < p <= e_(k+1)`` and "bins from k on" is exactly ``p > e_k``.

A numeric threshold is known in the workers, so every histogram's selection region is filled
there. ``threshold: optimise`` needs S and B of the whole run: after accumulation
:func:`finalise_selections` picks p_th (a score-axis edge) maximising S/sqrt(B) on the
``score`` histogram (PHYSICS.md "ML selections"), with a minimum background yield so that the
threshold does not sit on a handful of MC events, then fills the selection's region of
``m_hh`` (every systematic variation) from ``m_hh_score`` above p_th: exactly what filling
with the cut would have given. Other observables' regions of an optimised selection stay
empty (give a number to have them). The report (threshold, S, B, S/sqrt(B) per selection)
goes into the summary and ``selections.json``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import hist
import numpy as np

from . import EventColumns, Scorer

__all__ = [
    "SCORE_EDGES",
    "SIGNAL_PROCESSES",
    "Selection",
    "ScoringPlan",
    "build_scoring",
    "finalise_selections",
    "optimise_threshold",
    "parse_selections",
    "selection_lines",
    "significance_scan",
]

#: processes counted as signal by default (the rest are backgrounds)
SIGNAL_PROCESSES = ("resonant", "nonresonant")
#: score-axis edges: 0, 198 edges uniform in logit(p) over [-8, 8], 1 (200 bins; the bin at
#: p = 0.99 is 0.0008 wide, at p = 0.5 0.02)
SCORE_EDGES = np.concatenate([[0.0], 1.0 / (1.0 + np.exp(-np.linspace(-8.0, 8.0, 199))), [1.0]])


@dataclass(frozen=True)
class Selection:
    """One ``selections:`` entry of the job file (see the module docstring)."""

    name: str
    pairer: str
    scorer: str
    threshold: float | None  # None: optimise after the run
    after: str = "four_tag"
    signal: tuple[str, ...] | None = None
    backgrounds: tuple[str, ...] | None = None
    min_background: float = 1.0
    min_background_mc: float = 10.0

    @property
    def optimise(self) -> bool:
        return self.threshold is None

    def datasets(self, metadata: Mapping[str, Mapping]) -> tuple[list[str], list[str]]:
        """(signal, background) datasets of the S/sqrt(B) figure among ``metadata``'s."""
        signal = list(self.signal) if self.signal is not None else [
            d for d, m in metadata.items() if m.get("process") in SIGNAL_PROCESSES]
        if self.backgrounds is not None:
            backgrounds = list(self.backgrounds)
        else:
            backgrounds = [d for d, m in metadata.items() if m.get("process") not in SIGNAL_PROCESSES and d not in signal]
        for d in signal + backgrounds:
            if d not in metadata:
                raise ValueError(f"selection {self.name!r}: dataset {d!r} is not among the job's datasets {sorted(metadata)}")
        return signal, backgrounds


def parse_selections(selections: Mapping | None, pairers, scorers, regions, where: str = "job") -> dict[str, Selection]:
    """The job's ``selections:`` checked against its pairer and scorer labels and the processor's
    regions; one-line ``ValueError`` naming the key otherwise."""
    out = {}
    for name, spec in (selections or {}).items():
        spec = dict(spec or {})
        key = f"{where}: selections.{name}"
        known = {"pairer", "scorer", "threshold", "after", "signal", "backgrounds", "min_background", "min_background_mc"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"{key}: unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
        if name in regions:
            raise ValueError(f"{key}: the name is a processor region already; choose another")
        for what, labels in (("pairer", pairers), ("scorer", scorers)):
            if spec.get(what) not in labels:
                raise ValueError(f"{key}.{what}: got {spec.get(what)!r}; expected one of the job's {what}s {sorted(labels)}")
        threshold = spec.get("threshold", "optimise")
        if threshold in ("optimise", "optimize"):
            threshold = None
        elif isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
            raise ValueError(f"{key}.threshold: got {threshold!r}; expected 'optimise' or a number in [0, 1]")
        after = spec.get("after", "four_tag")
        if after not in regions:
            raise ValueError(f"{key}.after: got {after!r}; expected a processor region {list(regions)}")

        def names(k):  # called within this iteration
            v = spec.get(k)  # noqa: B023
            return None if v is None else tuple([v] if isinstance(v, str) else v)

        out[name] = Selection(
            name, spec["pairer"], spec["scorer"], None if threshold is None else float(threshold), after,
            names("signal"), names("backgrounds"), float(spec.get("min_background", 1.0)),
            float(spec.get("min_background_mc", 10.0)),
        )
    return out


def build_scoring(scorers: Mapping | None, selections: Mapping | None, pairers, m_hh_bins=None,
                  where: str = "job") -> ScoringPlan | None:
    """The :class:`ScoringPlan` of a job's ``scorers:`` and ``selections:`` (None when it has no
    selection: a scorer no selection uses is not constructed, so its model is never loaded)."""
    from ..histograms import OBSERVABLES, REGIONS
    from . import get_scorer

    scorers = dict(scorers or {})
    if isinstance(selections, Mapping) and not selections:
        selections = None
    if not selections:
        return None
    parsed = parse_selections(selections, list(pairers), list(scorers), REGIONS, where)
    built = {}
    for label in dict.fromkeys(s.scorer for s in parsed.values()):
        spec = dict(scorers[label] or {})
        unknown = set(spec) - {"plugin", "options"}
        if unknown:
            raise ValueError(f"{where}: scorers.{label}: unknown key(s) {sorted(unknown)}; known: ['options', 'plugin']")
        built[label] = get_scorer(spec.get("plugin") or label, **(spec.get("options") or {}))
    return ScoringPlan(built, parsed, m_hh_bins if m_hh_bins is not None else OBSERVABLES["m_hh"].bins)


def _score_axis() -> hist.axis.Variable:
    return hist.axis.Variable(SCORE_EDGES, name="score", label="Score")


def _bin_score(scores: np.ndarray) -> np.ndarray:
    # one ulp low: bin k holds e_k < p <= e_(k+1), so "bins from k on" is exactly p > e_k
    return np.nextafter(scores, -np.inf)


@dataclass
class ScoringPlan:
    """What the processor needs to score events: the scorers (label -> :class:`Scorer`) and the
    selections. Pickles with its scorers (which leave their sessions behind)."""

    scorers: dict[str, Scorer]
    selections: dict[str, Selection]
    m_hh_bins: tuple | list = field(default=(60, 200.0, 1400.0))

    def regions(self) -> list[str]:
        """Region names the histograms need besides the processor's own."""
        return list(self.selections)

    def uses(self, pairer: str) -> bool:
        return any(s.pairer == pairer for s in self.selections.values())

    def book(self, datasets=(), systematics=("nominal",)) -> dict[str, hist.Hist]:
        """Empty ``score`` and ``m_hh_score`` histograms, seeded with the chunk's categories."""
        from ..histograms import _axis

        def cats():
            return (
                hist.axis.StrCategory(list(datasets), name="dataset", label="Dataset", growth=True),
                hist.axis.StrCategory(list(self.selections), name="selection", label="Selection"),
                hist.axis.StrCategory(list(systematics), name="systematic", label="Systematic", growth=True),
            )

        return {
            "score": hist.Hist(*cats(), _score_axis(), storage=hist.storage.Weight()),
            "m_hh_score": hist.Hist(*cats(), _axis("m_hh", r"$m_{hh}$ [GeV]", self.m_hh_bins), _score_axis(),
                                    storage=hist.storage.Weight()),
        }

    def fill(self, hists: dict, *, dataset: str, pairer: str, regions: Mapping[str, np.ndarray], columns,
             m_hh: np.ndarray, fills) -> dict[str, np.ndarray]:
        """Score the paired events of ``pairer``, fill ``score``/``m_hh_score``, and return the
        masks of the selections with a numeric threshold (for the processor's regions).

        ``columns``: a callable returning the :class:`EventColumns` of the chunk's events
        (built only when this pairer has a selection); ``regions`` the processor's masks;
        ``fills``: ``[(systematic, weights)]``, the jet variation being processed first, then
        the weight-only variations (b-tagging) that share its events and scores.
        """
        chosen = [s for s in self.selections.values() if s.pairer == pairer]
        if not chosen:
            return {}
        paired = regions["four_tag"]
        scores: dict[str, np.ndarray] = {}
        cols: EventColumns | None = None
        masks = {}
        weight = fills[0][1]
        for sel in chosen:
            if sel.scorer not in scores:
                if cols is None:
                    cols = columns()
                s = np.full(len(weight), np.nan)
                if paired.any():
                    s[paired] = self.scorers[sel.scorer](cols.subset(paired))
                scores[sel.scorer] = s
            score = scores[sel.scorer]
            base = regions[sel.after] & paired
            binned = _bin_score(score[base])
            for systematic, w in fills:
                cats = {"dataset": dataset, "selection": sel.name, "systematic": systematic}
                hists["score"].fill(**cats, score=binned, weight=w[base])
                hists["m_hh_score"].fill(**cats, m_hh=m_hh[base], score=binned, weight=w[base])
            if not sel.optimise:
                with np.errstate(invalid="ignore"):
                    masks[sel.name] = base & (score > sel.threshold)
        return masks


def significance_scan(signal: np.ndarray, background: np.ndarray, background_sumw2: np.ndarray):
    """S, B, effective background MC events and S/sqrt(B) above each threshold candidate.

    The inputs are per score bin including flow (underflow, bins, overflow); candidate ``k``
    (``0 .. n_bins - 1``) keeps the bins from ``k`` on, i.e. scores above edge ``e_k``.
    """
    def above(x):  # sum over bins k.., overflow included, underflow never
        inner = np.asarray(x, dtype=np.float64)[1:]
        return np.cumsum(inner[::-1])[::-1][:-1]

    s, b, b2 = above(signal), above(background), above(background_sumw2)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(b > 0, s / np.sqrt(b), 0.0)
        n_eff = np.where(b2 > 0, b * b / b2, 0.0)
    return s, b, n_eff, z


def optimise_threshold(signal, background, background_sumw2, edges=SCORE_EDGES, min_background: float = 1.0,
                       min_background_mc: float = 10.0) -> dict:
    """p_th maximising S/sqrt(B) over the score-axis ``edges`` (PHYSICS.md "ML selections").

    Inputs as :func:`significance_scan`. Only thresholds that keep a weighted background yield of
    at least ``min_background`` and at least ``min_background_mc`` effective MC events qualify
    (ties: the lowest threshold). Returns ``{threshold, s, b, z, n_background_mc}``.
    """
    s, b, n_eff, z = significance_scan(signal, background, background_sumw2)
    ok = (b >= min_background) & (n_eff >= min_background_mc) & (b > 0)
    if not ok.any():
        raise ValueError(
            f"no threshold keeps {min_background:g} background events and {min_background_mc:g} effective MC "
            f"events (total background {b[0] if len(b) else 0:.3g}); lower min_background / min_background_mc"
        )
    k = int(np.argmax(np.where(ok, z, -np.inf)))
    return {"threshold": float(edges[k]), "s": float(s[k]), "b": float(b[k]), "z": float(z[k]),
            "n_background_mc": float(n_eff[k])}


def _score_flow(h: hist.Hist, selection: str, datasets: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Sum of weights and of squared weights per score bin (with flow), nominal, over ``datasets``."""
    n = len(h.axes["score"]) + 2
    values, variances = np.zeros(n), np.zeros(n)
    present = set(h.axes["dataset"])
    for d in datasets:
        if d not in present:
            continue
        view = h[{"dataset": d, "selection": selection, "systematic": "nominal"}].view(flow=True)
        values += view["value"]
        variances += view["variance"]
    return values, variances


def finalise_selections(histograms: dict, selections: Mapping[str, Selection], metadata: Mapping[str, Mapping]) -> dict:
    """After the run: optimise thresholds, fill the optimised selections' ``m_hh`` regions, and
    report every selection ``{name: {pairer, scorer, after, threshold, optimised, s, b, z, ...}}``.

    ``metadata``: ``{dataset: metadata}`` of the run (processes tell signal from background).
    Works in place on ``histograms`` (the accumulated, normalised output).
    """
    report = {}
    if not selections:
        return report
    hs, h2 = histograms["score"], histograms["m_hh_score"]
    for name, sel in selections.items():
        signal, backgrounds = sel.datasets(metadata)
        s_w, _ = _score_flow(hs, name, signal)
        b_w, b_w2 = _score_flow(hs, name, backgrounds)
        entry = {"pairer": sel.pairer, "scorer": sel.scorer, "after": sel.after, "signal": signal,
                 "backgrounds": backgrounds, "optimised": sel.optimise}
        if sel.optimise:
            best = optimise_threshold(s_w, b_w, b_w2, SCORE_EDGES, sel.min_background, sel.min_background_mc)
            entry.update(best, min_background=sel.min_background, min_background_mc=sel.min_background_mc)
            _fill_region_from_scores(histograms["m_hh"], h2, sel, best["threshold"])
        else:
            # S and B above the given threshold: exact when it is a score-axis edge, else from
            # the events (the processor applied the cut itself); use the filled region
            hm = histograms["m_hh"]
            s, b, b2 = (_region_sum(hm, sel, signal, "value"), _region_sum(hm, sel, backgrounds, "value"),
                        _region_sum(hm, sel, backgrounds, "variance"))
            entry.update(threshold=sel.threshold, s=s, b=b, z=s / math.sqrt(b) if b > 0 else 0.0,
                         n_background_mc=b * b / b2 if b2 > 0 else 0.0)
        s_all, b_all = float(s_w[1:].sum()), float(b_w[1:].sum())  # underflow: score exactly 0
        entry["signal_efficiency"] = entry["s"] / s_all if s_all > 0 else None
        entry["background_efficiency"] = entry["b"] / b_all if b_all > 0 else None
        report[name] = entry
    return report


def _region_sum(h: hist.Hist, sel: Selection, datasets: list[str], key: str) -> float:
    present = set(h.axes["dataset"])
    total = 0.0
    for d in datasets:
        if d in present and sel.pairer in h.axes["pairer"]:
            total += float(h[{"dataset": d, "region": sel.name, "pairer": sel.pairer, "systematic": "nominal"}]
                           .view(flow=True)[key].sum())
    return total


def _fill_region_from_scores(h: hist.Hist, h2: hist.Hist, sel: Selection, threshold: float) -> None:
    """``h``'s (m_hh's) region ``sel.name`` for ``sel.pairer`` := ``h2`` above ``threshold``."""
    k = int(np.searchsorted(SCORE_EDGES, threshold))  # threshold is edge k
    if not np.isclose(SCORE_EDGES[k], threshold):
        raise ValueError(f"selection {sel.name!r}: threshold {threshold} is not a score-axis edge")
    if sel.pairer not in h.axes["pairer"]:
        return
    view, view2 = h.view(flow=True), h2.view(flow=True)
    names = h.axes.name
    r, p = h.axes["region"].index(sel.name), h.axes["pairer"].index(sel.pairer)
    s2 = h2.axes["selection"].index(sel.name)
    for d in h2.axes["dataset"]:
        if d not in h.axes["dataset"]:
            continue
        for syst in h2.axes["systematic"]:
            if syst not in h.axes["systematic"]:
                continue
            index = {"dataset": h.axes["dataset"].index(d), "region": r, "pairer": p,
                     "systematic": h.axes["systematic"].index(syst)}
            at = tuple(index[n] for n in names if n in index)  # category axes come first
            i2 = (h2.axes["dataset"].index(d), s2, h2.axes["systematic"].index(syst))
            # score index k + 1 in flow coordinates is bin k; overflow included
            for key in ("value", "variance"):
                view[key][at] = view2[key][i2][:, k + 1:].sum(axis=-1)


def selection_lines(report: Mapping[str, Mapping]) -> list[str]:
    """One line per selection for the run summary."""
    lines = []
    for name, e in report.items():
        how = "optimised S/sqrt(B)" if e["optimised"] else "given"
        eff = "" if e.get("signal_efficiency") is None else (
            f", efficiency S {e['signal_efficiency']:.3f} B {e['background_efficiency']:.2e}"
            if e.get("background_efficiency") is not None else f", efficiency S {e['signal_efficiency']:.3f}")
        lines.append(
            f"{name} ({e['scorer']} on {e['pairer']}, after {e['after']}): p_th = {e['threshold']:.4f} ({how}); "
            f"S = {e['s']:.4g}, B = {e['b']:.4g}, S/sqrt(B) = {e['z']:.3f}{eff}"
        )
    return lines
