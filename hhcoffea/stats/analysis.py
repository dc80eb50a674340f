"""From the processor's histograms to limits, kappa_lambda intervals and plots (the library side of
``hhcoffea limits``; the job's ``statistics:`` section is documented in :mod:`hhcoffea.stats.config`).

:func:`run_statistics` runs every configured analysis for every luminosity and writes, in
``<output_dir>/statistics/lumi_<L>/``: ``resonant_bkgonly.json`` + ``resonant_patchset.json`` and
``nonresonant_bkgonly.json`` + ``nonresonant_patchset.json`` (``pyhf patchset apply`` gives the
full workspaces; the background-only ones have no signal, so build their model with
``poi_name=None``), ``limits_resonant.json``/``.csv``/``.png`` (Brazil band),
``kappa_lambda.json``/``.png``; and ``<output_dir>/statistics/summary.json``. Every limit,
interval and scan names its data (:class:`~hhcoffea.stats.config.DataHypothesis`), its calculator,
whether all its fits converged, and warnings (e.g. the asymptotic formulae on bins with few
background events). :func:`format_summary` turns the summary into a few lines of text.

With ``merge_empty_bins: true`` each channel's bins without expected background are merged into
their neighbours once, in :class:`AnalysisInputs` (every sample, histosys template and the data
alike), before any workspace is built; ``summary.json`` (``merged_bins``), the result JSON files
and the summary text say which bins were merged per channel.
"""

from __future__ import annotations

import csv
import json
import math
import pathlib
import time
from collections.abc import Mapping

import numpy as np
import pyhf

from .. import constants
from ..histograms import HISTOGRAM_FOLDER, load_histograms
from . import plots
from .config import SIGNAL, DataHypothesis, StatisticsConfig
from .kappa import equivalent_luminosity, kappa_cls_scan, kappa_profile_scan
from .likelihood import FastModel
from .limits import make_calculator, transfer_pars
from .morphing import morph_template, morph_values
from .workspace import (
    Channels,
    MissingInputError,
    Sample,
    build_patchset,
    empty_bin_merge,
    extract_template,
    observable_edges,
    patch_name,
)

__all__ = [
    "AnalysisInputs",
    "run_statistics",
    "run_statistics_for_job",
    "format_summary",
    "comparison_table",
    "load_outputs",
    "kappa_width",
    "morphing_closure",
    "low_count_warning",
    "LOW_BACKGROUND_EVENTS",
]

#: below this many expected background events in a bin the asymptotic formulae are unreliable
LOW_BACKGROUND_EVENTS = 5.0


# ---------------------------------------------------------------------- inputs
class AnalysisInputs:
    """Templates read once at the file's luminosity for one selection (regions x pairer).

    With ``cfg.merge_empty_bins`` the bins of a region whose total expected ``backgrounds``
    (default: the non-resonant ones if there is a basis, else the resonant ones) is <= 0 are merged
    here, for every template and the data (:attr:`merges`, :attr:`merged_bins`, :attr:`channel_edges`).
    """

    def __init__(
        self, cfg: StatisticsConfig, histograms: Mapping, metadata: Mapping, *, regions=None, pairer=None, backgrounds=None
    ):
        self.cfg = cfg
        self.meta = metadata["datasets"]
        self.regions = list(regions or cfg.regions)
        pairer = pairer or cfg.pairer
        self.edges = observable_edges(histograms, cfg.observable)

        def read(name: str, is_signal: bool, factor: float) -> dict[str, Sample]:
            syst = cfg.systematics_for(name, is_signal)
            return {
                r: Sample(
                    SIGNAL if is_signal else name,
                    extract_template(
                        histograms, name, region=r, pairer=pairer, observable=cfg.observable, variations=syst.histosys
                    ).scaled(factor),
                    syst,
                )
                for r in self.regions
            }

        self.backgrounds = {b: read(b, False, cfg.background_factor) for b in cfg.all_backgrounds}
        self.resonant = {s: read(s, True, cfg.signal_factor) for s in cfg.resonant}
        self.basis = [read(s, True, cfg.signal_factor) for s in cfg.basis]
        self.check = read(cfg.check, True, cfg.signal_factor) if cfg.check else None
        self.data = None
        if cfg.data_dataset:
            t = {
                r: extract_template(histograms, cfg.data_dataset, region=r, pairer=pairer, observable=cfg.observable)
                for r in self.regions
            }
            self.data = {r: t[r].yields for r in self.regions}
        self.channel_edges = {r: self.edges for r in self.regions}
        self.merges = {}
        if cfg.merge_empty_bins:
            default = cfg.nonresonant_backgrounds if cfg.basis else cfg.resonant_backgrounds
            self._merge_empty_bins(list(backgrounds or default))

    def _merge_empty_bins(self, names: list[str]) -> None:
        """The one place bins merge: per region, from the total of ``names``, applied to every sample
        (with its sumw2 and histosys templates) and the observed data alike."""
        for r in self.regions:
            merge = empty_bin_merge(np.sum([self.backgrounds[b][r].template.yields for b in names], axis=0), r)
            if merge.is_identity:
                continue
            self.merges[r] = merge
            self.channel_edges[r] = merge.edges(self.edges)
            for samples in [*self.backgrounds.values(), *self.resonant.values(), *self.basis, *([self.check] if self.check else [])]:
                samples[r] = merge.sample(samples[r])
            if self.data is not None:
                self.data[r] = merge.values(self.data[r])

    @property
    def merged_bins(self) -> dict:
        """``{channel: {"merged": [{"bins": [[lo, hi], ..], "into": [lo, hi]}], "edges": [...], "text": ...}}``
        of the channels whose empty-background bins were merged (empty when none)."""
        return {
            r: {"merged": m.merged(self.edges), "edges": [float(e) for e in self.channel_edges[r]], "text": m.describe(r, self.edges)}
            for r, m in self.merges.items()
        }

    def channels(self, scale: float, names: list[str]) -> Channels:
        """The background side of the likelihood at ``scale`` times the file's luminosity."""
        return Channels(
            {r: [self.backgrounds[b][r].scaled(scale) for b in names] for r in self.regions},
            self.cfg.lumi_uncertainty,
        )

    def xsec(self, name: str) -> float:
        """sigma x BR in fb at the analysis' sqrt(s)."""
        return float(self.meta[name]["xsec_fb"]) * self.cfg.signal_factor

    @property
    def morphing(self) -> str:
        """``lagrange`` (templates quadratic in kappa_lambda), or ``emulation NNLO`` for emulated
        samples normalised to sigma_NNLO(kappa_lambda) x BR, whose LO shapes need the K-factor
        weighted coefficients (``nonresonant.morphing`` in the job forces one)."""
        choice = self.cfg.morphing
        if choice != "auto":
            return choice
        ks = self.basis_kappas
        nnlo = all(
            self.meta[b].get("process") == "nonresonant"
            and math.isclose(
                float(self.meta[b]["xsec_fb"]), float(constants.ggf_hh_xsec_13tev(k)) * constants.BR_HH_4B, rel_tol=1e-9
            )
            for b, k in zip(self.cfg.basis, ks)
        )
        return "emulation NNLO" if nnlo else "lagrange"

    def _coefficients(self):
        if self.morphing == "emulation NNLO":
            from ..emulation.xsec import nonresonant_morphing_coefficients

            return nonresonant_morphing_coefficients
        return None

    @property
    def basis_kappas(self) -> list[float]:
        ks = [self.meta[b].get("kappa_lambda") for b in self.cfg.basis]
        if any(k is None for k in ks):
            raise MissingInputError(f"a non-resonant basis dataset has no kappa_lambda in metadata: {self.cfg.basis}")
        return [float(k) for k in ks]

    def signal_at(self, scale: float):
        """``kappa_lambda -> {region: signal Sample}``: the morphed template at ``scale``."""
        ks = self.basis_kappas
        coef = self._coefficients()

        def at(kappa: float) -> dict[str, Sample]:
            return {
                r: Sample(
                    SIGNAL,
                    morph_template(
                        ks, [b[r].template.scaled(scale) for b in self.basis], kappa, clip=True, coefficients=coef
                    ),
                    self.basis[0][r].systematics,
                )
                for r in self.regions
            }

        return at

    def xsec_at(self, kappa: float) -> float:
        """Morphed sigma x BR(4b) in fb at ``kappa``."""
        return float(morph_values(self.basis_kappas, [self.xsec(b) for b in self.cfg.basis], kappa))

    def observations(self, scale: float, chans: Channels, hypothesis: DataHypothesis, signal=None) -> dict:
        """Main data per channel for ``hypothesis`` (``signal``: {channel: Sample} of an S+B Asimov set)."""
        if hypothesis.kind == "observed":
            return {r: self.data[r] * scale for r in self.regions}
        if hypothesis.kind == "background-only Asimov":
            return chans.asimov()
        return chans.asimov(signal, hypothesis.mu)


def _write_json(path: pathlib.Path, obj) -> pathlib.Path:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")
    return path


def low_count_warning(chans: Channels, calculator: str) -> str | None:
    """A warning when the asymptotic calculator meets bins with few expected background events."""
    if calculator != "asymptotic":
        return None
    low = [
        f"{ch} bin {i} ({b:.2g})"
        for ch in chans.backgrounds
        for i, b in enumerate(chans.total(ch))
        if b < LOW_BACKGROUND_EVENTS
    ]
    if not low:
        return None
    shown = ", ".join(low[:4]) + (f" and {len(low) - 4} more" if len(low) > 4 else "")
    return (
        f"asymptotic CLs with fewer than {LOW_BACKGROUND_EVENTS:g} expected background events in {len(low)} bin(s): "
        f"{shown}; the asymptotic formulae are unreliable there (use calculator: toys)"
    )


def _calculator_info(cfg: StatisticsConfig) -> dict:
    out = {"calculator": cfg.calculator}
    if cfg.calculator == "toys":
        out.update(n_toys=cfg.n_toys, seed=cfg.seed)
    return out


# ---------------------------------------------------------------------- resonant
def _resonant(inp: AnalysisInputs, scale: float, lumi: float, out: pathlib.Path) -> dict:
    cfg = inp.cfg
    hyp = cfg.resonant_data
    chans = inp.channels(scale, cfg.resonant_backgrounds)
    signals = sorted(cfg.resonant, key=lambda s: float(inp.meta[s].get("m_x") or 0.0))
    sig = {s: {r: x.scaled(scale) for r, x in inp.resonant[s].items()} for s in signals}
    per_patch_data = hyp.kind == "S+B Asimov"
    # the background-only workspace carries the data of every patch but S+B Asimov ones
    obs = inp.observations(scale, chans, hyp if not per_patch_data else DataHypothesis.asimov(0.0))
    bkg_ws = chans.background_only(obs)
    patches = []
    for s in signals:
        m_x = inp.meta[s].get("m_x")
        if m_x is None:
            raise MissingInputError(f"resonant dataset {s!r} has no m_x in metadata")
        patches.append((patch_name("mX", float(m_x)), [float(m_x)], chans.signal_patch(bkg_ws, sig[s])))
    pset = build_patchset(bkg_ws, patches, label="m_X", description=f"hh4b resonant m_X grid, {lumi:g} fb-1")
    _write_json(out / "resonant_bkgonly.json", bkg_ws)
    _write_json(out / "resonant_patchset.json", pset)
    rows = []
    prev = None
    patchset = pyhf.PatchSet(pset)
    bkg_workspace = pyhf.Workspace(bkg_ws)
    for s, (pname, (m_x,), _) in zip(signals, patches):
        # the limits are computed on exactly what `pyhf patchset apply` gives
        ws = patchset.apply(bkg_workspace, pname)
        fast = FastModel(ws.model())
        data = np.asarray(ws.data(fast.model), dtype=float)
        if per_patch_data:
            asimov = chans.asimov(sig[s], hyp.mu)
            data[: fast.nbins] = np.concatenate([asimov[ch] for ch in fast.model.config.channels])
        init = None if prev is None else transfer_pars(prev[0], prev[1], fast)
        calc = make_calculator(
            fast, data, level=constants.CLS_LEVEL, init=init, calculator=cfg.calculator, n_toys=cfg.n_toys, seed=cfg.seed
        )
        res = calc.result()
        prev = (fast, calc.bkg_pars)
        xs = inp.xsec(s)
        rows.append(
            {
                "patch": pname,
                "dataset": s,
                "m_x": m_x,
                "xsec_fb": xs,
                "mu_observed": res.observed,
                "mu_expected": res.expected,
                "xsec_limit_observed_fb": res.observed * xs,
                "xsec_limit_expected_fb": [e * xs for e in res.expected],
                "mu_hat": res.mu_hat,
                "converged": res.converged,
                "failed_fits": res.failed_fits,
            }
        )
    warnings = [w for w in [low_count_warning(chans, cfg.calculator)] if w]
    failed = [r["m_x"] for r in rows if not r["converged"]]
    if failed:
        warnings.append(f"fits did not converge (after a retry) for m_X = {', '.join(f'{m:g}' for m in failed)}")
    result = {
        "luminosity_fb": lumi,
        "sqrt_s_TeV": cfg.sqrt_s,
        "cl": 1.0 - constants.CLS_LEVEL,
        "data": hyp.label,
        "data_hypothesis": hyp.to_dict(),
        **_calculator_info(cfg),
        "observed_means": f"the limit on the data ({hyp.label})",
        "xsec_definition": "sigma(pp -> X -> hh) x B(hh -> 4b), fb; expected = [-2, -1, 0, +1, +2] sigma",
        "converged": not failed,
        "warnings": warnings,
        "merged_bins": inp.merged_bins,
        "points": rows,
    }
    _write_json(out / "limits_resonant.json", result)
    with open(out / "limits_resonant.csv", "w", newline="") as f:
        w = csv.writer(f)
        band = ["m2", "m1", "med", "p1", "p2"]
        w.writerow(
            ["m_x", "dataset", "xsec_fb", "mu_obs"]
            + [f"mu_exp_{b}" for b in band]
            + ["xsec_limit_obs_fb"]
            + [f"xsec_limit_exp_{b}_fb" for b in band]
            + ["converged", "data"]
        )
        for r in rows:
            w.writerow(
                [r["m_x"], r["dataset"], r["xsec_fb"], r["mu_observed"], *r["mu_expected"], r["xsec_limit_observed_fb"]]
                + r["xsec_limit_expected_fb"]
                + [r["converged"], hyp.label]
            )
    if rows:
        plots.brazil_band(
            [r["m_x"] for r in rows],
            np.array([r["xsec_limit_expected_fb"] for r in rows]),
            [r["xsec_limit_observed_fb"] for r in rows],
            out / "limits_resonant.png",
            luminosity=lumi,
            observed_label=f"Limit on data: {hyp.label}",
            text=f"CLs {cfg.calculator}",
        )
    return result


# ---------------------------------------------------------------------- non-resonant
def kappa_width(inp: AnalysisInputs, scale: float, method: str) -> float | None:
    """Delta kappa_lambda of ``method`` (``profile``: kappa_lambda-POI scan on its data hypothesis;
    ``cls``: expected CLs interval, background-only data) at ``scale`` x the file's luminosity."""
    cfg = inp.cfg
    chans = inp.channels(scale, cfg.nonresonant_backgrounds)
    signal_at = inp.signal_at(scale)
    grid = cfg.kappa_grid
    if method == "profile":
        hyp = cfg.profile_data
        obs = inp.observations(scale, chans, hyp, signal_at(cfg.kappa_hypothesis))
        return kappa_profile_scan(chans, signal_at, grid, obs, refine=False)["interval"]["width"]
    obs = inp.observations(scale, chans, cfg.cls_data)
    return kappa_cls_scan(chans, signal_at, grid, obs, refine=False)["expected"]["width"]


def morphing_closure(inp: AnalysisInputs) -> dict:
    """Morphed template vs the directly generated fourth sample: chi2 / ndf over non-empty bins."""
    name = inp.cfg.check
    k = inp.meta[name].get("kappa_lambda")
    if k is None:
        raise MissingInputError(f"check dataset {name!r} has no kappa_lambda in metadata")
    chi2, ndf = 0.0, 0
    for r in inp.regions:
        m = morph_template(inp.basis_kappas, [b[r].template for b in inp.basis], float(k), coefficients=inp._coefficients())
        d = inp.check[r].template
        var = m.sumw2 + d.sumw2
        ok = var > 0
        chi2 += float(np.sum((m.yields[ok] - d.yields[ok]) ** 2 / var[ok]))
        ndf += int(ok.sum())
    return {"dataset": name, "kappa_lambda": float(k), "chi2": chi2, "ndf": ndf, "morphing": inp.morphing}


def _nonresonant(inp: AnalysisInputs, scale: float, lumi: float, out: pathlib.Path) -> dict:
    cfg = inp.cfg
    chans = inp.channels(scale, cfg.nonresonant_backgrounds)
    signal_at = inp.signal_at(scale)
    cls_hyp, prof_hyp = cfg.cls_data, cfg.profile_data
    cls_obs = inp.observations(scale, chans, cls_hyp)
    prof_obs = inp.observations(scale, chans, prof_hyp, signal_at(cfg.kappa_hypothesis))
    # published-likelihood convention: the background-only workspace holds the data of the CLs scan
    bkg_ws = chans.background_only(cls_obs)
    patches = [(patch_name("kl", k), [k], chans.signal_patch(bkg_ws, signal_at(k))) for k in cfg.kappa_grid]
    pset = build_patchset(bkg_ws, patches, label="kappa_lambda", description=f"hh4b kappa_lambda grid, {lumi:g} fb-1")
    _write_json(out / "nonresonant_bkgonly.json", bkg_ws)
    _write_json(out / "nonresonant_patchset.json", pset)
    cls = kappa_cls_scan(
        chans,
        signal_at,
        cfg.kappa_grid,
        cls_obs,
        xsec_at=inp.xsec_at,
        calculator=cfg.calculator,
        n_toys=cfg.n_toys,
        seed=cfg.seed,
    )
    cls["data"] = cls_hyp.label
    cls["data_hypothesis"] = cls_hyp.to_dict()
    prof = kappa_profile_scan(chans, signal_at, cfg.kappa_grid, prof_obs, mu=1.0)
    prof["data"] = prof_hyp.label
    prof["data_hypothesis"] = prof_hyp.to_dict()
    warnings = [w for w in [low_count_warning(chans, cfg.calculator)] if w]
    if cls["sm_excluded"]:
        warnings.append(
            f"the SM (kappa_lambda = 1) is excluded by the CLs scan on {cls_hyp.label} data (median mu limit "
            f"{cls['sm_median_mu_limit']:.3g} < 1): its interval is no constraint around the SM and has no width; "
            "the profile-likelihood interval is the expected constraint"
        )
    for name, scan in (("CLs", cls), ("profile-likelihood", prof)):
        if not scan["converged"]:
            warnings.append(f"{name} scan: fits did not converge at kappa_lambda = {scan['failed_points']}")
    result = {
        "luminosity_fb": lumi,
        "sqrt_s_TeV": cfg.sqrt_s,
        "basis": {"datasets": cfg.basis, "kappa_lambda": inp.basis_kappas, "morphing": inp.morphing},
        "cls_mu_poi": cls,
        "profile_likelihood": prof,
        "warnings": warnings,
        "merged_bins": inp.merged_bins,
    }
    if cfg.check:
        result["morphing_closure"] = morphing_closure(inp)
    _write_json(out / "kappa_lambda.json", result)
    plots.kappa_scans(cls, prof, out / "kappa_lambda.png", luminosity=lumi)
    return result


# ---------------------------------------------------------------------- all analyses
def run_statistics(config: dict, histograms: dict, metadata: dict, output_dir: pathlib.Path) -> dict:
    """Run every configured analysis; write ``<output_dir>/statistics/``; return a summary dict.

    Args:
        config: the job's ``statistics:`` section.
        histograms: ``{name: hist.Hist}`` from the processor (the output folder's ``hists/``).
        metadata: ``metadata.json`` (luminosity and per-dataset information).
        output_dir: the job's output folder.
    """
    t0 = time.perf_counter()
    cfg = StatisticsConfig(config, metadata)
    # each analysis reads its own signal regions (e.g. the resonant one adds the pT cuts)
    inp_res = (
        AnalysisInputs(cfg, histograms, metadata, regions=cfg.resonant_regions, backgrounds=cfg.resonant_backgrounds)
        if cfg.resonant else None
    )  # fmt: skip
    inp = (
        AnalysisInputs(cfg, histograms, metadata, regions=cfg.nonresonant_regions, backgrounds=cfg.nonresonant_backgrounds)
        if cfg.basis else None
    )  # fmt: skip
    root = pathlib.Path(output_dir) / "statistics"
    root.mkdir(parents=True, exist_ok=True)
    summary: dict = {"luminosities": {}, "files": [], **_calculator_info(cfg)}
    if cfg.merge_empty_bins:  # {analysis: {channel: ...}}; the compared selections are added below
        summary["merged_bins"] = {
            name: i.merged_bins for name, i in (("resonant", inp_res), ("nonresonant", inp)) if i is not None and i.merges
        }
    for lumi in cfg.luminosities:
        scale = lumi / cfg.l0
        out = root / f"lumi_{lumi:g}"
        out.mkdir(exist_ok=True)
        entry: dict = {}
        if cfg.resonant:
            res = _resonant(inp_res, scale, lumi, out)
            entry["resonant"] = {
                "data": res["data"],
                "calculator": res["calculator"],
                "converged": res["converged"],
                "warnings": res["warnings"],
                "xsec_limits_fb": {
                    f"{p['m_x']:g}": {"observed": p["xsec_limit_observed_fb"], "expected": p["xsec_limit_expected_fb"][2]}
                    for p in res["points"]
                },
            }
        if cfg.basis:
            nr = _nonresonant(inp, scale, lumi, out)
            cls, prof = nr["cls_mu_poi"], nr["profile_likelihood"]
            entry["kappa_lambda"] = {
                "cls": {
                    "data": cls["data"],
                    "expected": cls["expected"],
                    "observed": cls["observed"],
                    "sm_excluded": cls["sm_excluded"],
                    "converged": cls["converged"],
                },
                "profile": {
                    "data": prof["data"],
                    "interval": prof["interval"],
                    "best_fit": prof["best_fit"],
                    "converged": prof["converged"],
                },
                "warnings": nr["warnings"],
            }
            if "morphing_closure" in nr:
                entry["kappa_lambda"]["morphing_closure"] = nr["morphing_closure"]
        summary["luminosities"][f"{lumi:g}"] = entry
        summary["files"] += sorted(str(p) for p in out.iterdir())
    if cfg.equivalent and cfg.basis:
        summary["equivalent_luminosity"] = _equivalent(cfg, inp, histograms, metadata)
        if summary["equivalent_luminosity"]["baseline"].get("merged_bins"):
            summary["merged_bins"]["equivalent_luminosity baseline"] = summary["equivalent_luminosity"]["baseline"]["merged_bins"]
    if cfg.compare and cfg.basis:
        summary["comparison"] = _comparison(cfg, histograms, metadata)
        for label, row in summary["comparison"].items():
            if row.get("merged_bins"):
                summary["merged_bins"][f"compare {label}"] = row["merged_bins"]
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    _write_json(root / "summary.json", summary)
    return summary


def _equivalent(cfg: StatisticsConfig, inp: AnalysisInputs, histograms, metadata) -> dict:
    eq = dict(cfg.equivalent)
    base = dict(eq.get("baseline") or {})
    regions = base.get("regions", base.get("region", cfg.regions))
    regions = [regions] if isinstance(regions, str) else list(regions)
    if base.get("selection"):  # a score-based selection as the baseline
        from .config import selection_region

        regions, base["pairer"] = selection_region(base["selection"], metadata)
    baseline = AnalysisInputs(
        cfg, histograms, metadata, regions=regions, pairer=base.get("pairer", cfg.pairer), backgrounds=cfg.nonresonant_backgrounds
    )
    lref = float(eq.get("luminosity", constants.REFERENCE_LUMINOSITY))
    out = {"baseline": {"regions": regions, "pairer": base.get("pairer", cfg.pairer)}, "luminosity_fb": lref}
    if baseline.merges:
        out["baseline"]["merged_bins"] = baseline.merged_bins
    for method in eq.get("methods", ["profile"]):
        target = kappa_width(inp, lref / cfg.l0, method)
        lumi = None
        if target is not None:
            lumi = equivalent_luminosity(
                lambda L: kappa_width(baseline, L / cfg.l0, method),  # noqa: B023 (solved here)
                target, (lref / 30.0, lref * 30.0), rtol=1e-3,
            )
        data = cfg.profile_data if method == "profile" else cfg.cls_data
        out[method] = {"delta_kappa_lambda": target, "equivalent_luminosity_fb": lumi, "data": data.label}
    return out


def _comparison(cfg: StatisticsConfig, histograms, metadata) -> dict:
    """kappa_lambda intervals (CLs mu-POI expected, profile likelihood) of every ``compare`` entry."""
    out = {}
    for label, spec in cfg.compare.items():
        backgrounds, poisson = spec["backgrounds"], spec["likelihood"] == "poisson"
        inp = AnalysisInputs(cfg, histograms, metadata, regions=spec["regions"], pairer=spec["pairer"], backgrounds=backgrounds)
        ref = spec["reference"]
        row = {"regions": spec["regions"], "pairer": spec["pairer"], "reference": ref,
               "likelihood": spec["likelihood"], "backgrounds": backgrounds,
               "reference_cls_expected": list(constants.REFERENCE_KAPPA_INTERVALS_TABLE_VI[ref]) if ref else None,
               "reference_profile": list(constants.REFERENCE_KAPPA_INTERVALS_TABLE_VI_KAPPA_POI[ref]) if ref else None,
               "luminosities": {}}
        if inp.merges:
            row["merged_bins"] = inp.merged_bins
        for lumi in cfg.compare_luminosities:
            scale = lumi / cfg.l0
            chans = inp.channels(scale, backgrounds)
            signal_at = inp.signal_at(scale)
            if poisson:
                chans = chans.without_nuisances()
                signal_at = _without_nuisances(signal_at)
            cls = kappa_cls_scan(chans, signal_at, cfg.kappa_grid, inp.observations(scale, chans, cfg.cls_data),
                                 xsec_at=inp.xsec_at)
            prof = kappa_profile_scan(chans, signal_at, cfg.kappa_grid,
                                      inp.observations(scale, chans, cfg.profile_data, signal_at(cfg.kappa_hypothesis)), mu=1.0)
            row["luminosities"][f"{lumi:g}"] = {"cls_expected": cls["expected"], "sm_excluded": cls["sm_excluded"],
                                                "profile": prof["interval"], "converged": cls["converged"] and prof["converged"]}
        out[label] = row
    return out


def _without_nuisances(signal_at):
    """``signal_at`` with every signal sample stripped of its modifiers (the Poisson likelihood)."""

    def at(kappa: float) -> dict:
        return {r: s.without_nuisances() for r, s in signal_at(kappa).items()}

    return at


def _likelihood_text(row: dict) -> str:
    what = "Poisson only" if row.get("likelihood") == "poisson" else "job's systematics"
    return f"{what}; {'+'.join(row.get('backgrounds', []))}"


def comparison_table(comparison: dict) -> str:
    """The compared selections' kappa_lambda intervals in one table, beside the seeds' table VI."""
    lines = ["| selection | region(s) / pairer | likelihood | L [fb-1] | CLs mu-POI expected | table VI (mu-POI) "
             "| profile likelihood | table VI (kappa-POI) |", "|---|---|---|---:|---|---|---|---|"]

    def ref_text(ref):
        return f"[{ref[0]:.2f}, {ref[1]:.2f}] (width {ref[1] - ref[0]:.2f})" if ref else "-"

    for label, row in comparison.items():
        for lumi, r in row["luminosities"].items():
            lines.append(f"| {label} | {'+'.join(row['regions'])} / {row['pairer']} | {_likelihood_text(row)} | {lumi} | "
                         f"{_interval_text(r['cls_expected'], sm_excluded=r['sm_excluded'])} | "
                         f"{ref_text(row.get('reference_cls_expected'))} | {_interval_text(r['profile'])} | "
                         f"{ref_text(row.get('reference_profile'))} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- job entry point and text
def load_outputs(out: pathlib.Path) -> tuple[dict, dict]:
    """The histograms (``hists/``) and ``metadata.json`` of a job's output folder."""
    hpath, mpath = out / HISTOGRAM_FOLDER, out / "metadata.json"
    for p in (hpath, mpath):
        if not p.exists():
            raise MissingInputError(f"{p} not found (run the processor first)")
    return load_histograms(out), json.loads(mpath.read_text())


def run_statistics_for_job(job, console=None) -> dict:
    """For the runner: ``job.config["statistics"]`` on the histograms in ``job.output``."""
    out = pathlib.Path(job.output)
    histograms, metadata = load_outputs(out)
    summary = run_statistics(dict(job.config.get("statistics") or {}), histograms, metadata, out)
    text = format_summary(summary)
    if console is not None:
        console.print(text, markup=False)  # "[fb]" and "[lo, hi]" are text, not rich markup
    return summary


def _interval_text(d: dict, *, sm_excluded: bool = False) -> str:
    if d.get("empty"):
        return "empty (every kappa_lambda excluded)"
    lo = "open" if d["lower"] is None else f"{d['lower']:.2f}"
    hi = "open" if d["upper"] is None else f"{d['upper']:.2f}"
    if sm_excluded:
        return f"[{lo}, {hi}] (SM excluded: no width)"
    w = "" if d["width"] is None else f" (width {d['width']:.2f})"
    return f"[{lo}, {hi}]{w}"


def format_summary(summary: dict) -> str:
    """A few readable lines: limits per m_X and the kappa_lambda intervals per luminosity, each
    naming its data; warnings after them."""
    lines = []
    calc = summary.get("calculator", "asymptotic")
    if calc == "toys":
        calc = f"toys ({summary.get('n_toys')} per hypothesis, seed {summary.get('seed')})"
    for lumi, entry in summary["luminosities"].items():
        if "resonant" in entry:
            r = entry["resonant"]
            lims = ", ".join(f"{m}: {v['expected']:.3g}/{v['observed']:.3g}" for m, v in r["xsec_limits_fb"].items())
            flag = "" if r["converged"] else " [FIT NOT CONVERGED]"
            lines.append(
                f"{lumi} fb-1 resonant 95% CL sigma x B limits [fb], CLs {calc} (m_X: median expected/limit on data; "
                f"data: {r['data']}): {lims}{flag}"
            )
        if "kappa_lambda" in entry:
            k = entry["kappa_lambda"]
            c, p = k["cls"], k["profile"]
            text = f"{lumi} fb-1 kappa_lambda: CLs mu-POI ({c['data']}) expected {_interval_text(c['expected'], sm_excluded=c['sm_excluded'])}"
            if not c["data"].endswith("Asimov"):
                text += f", observed {_interval_text(c['observed'])}"
            text += f"; profile likelihood kappa_lambda-POI ({p['data']}) {_interval_text(p['interval'])}"
            if not (c["converged"] and p["converged"]):
                text += " [FIT NOT CONVERGED]"
            lines.append(text)
        for w in entry.get("resonant", {}).get("warnings", []) + entry.get("kappa_lambda", {}).get("warnings", []):
            lines.append(f"  warning ({lumi} fb-1): {w}")
    for analysis, channels in (summary.get("merged_bins") or {}).items():
        for info in channels.values():
            lines.append(f"merged empty-background bins ({analysis}): {info['text']}")
    if "comparison" in summary:
        lines.append("kappa_lambda intervals of the compared selections (data: as above):")
        lines.append(comparison_table(summary["comparison"]))
    if "equivalent_luminosity" in summary:
        eq = summary["equivalent_luminosity"]
        for method, v in eq.items():
            if isinstance(v, dict) and "equivalent_luminosity_fb" in v:
                lumi = v["equivalent_luminosity_fb"]
                width = v["delta_kappa_lambda"]
                lines.append(
                    f"equivalent luminosity ({method}, {v.get('data', '')}): the baseline ({eq['baseline']['pairer']}) needs "
                    + ("no luminosity in the searched range" if lumi is None else f"{lumi:.0f} fb-1")
                    + " to reach the Delta kappa_lambda "
                    + ("(open interval)" if width is None else f"{width:.2f}")
                    + f" of this selection at {eq['luminosity_fb']:g} fb-1"
                )
    return "\n".join(lines)
