"""``hhcoffea limits``: from the processor's histograms to limits, kappa_lambda intervals and plots.

The job file's ``statistics:`` section (all keys optional unless marked)::

    statistics:
      observable: m_hh              # histogram in histograms.pkl; its last axis is the fitted observable
      regions: [signal]             # one channel per region ("region: signal" also accepted)
      pairer: min_dr
      luminosity: [139, 300, 3000]  # fb^-1; one analysis each; yields scale by L / metadata luminosity
      sqrt_s: 14                    # 14: signal sigma x SQRT_S_RESCALE_13_TO_14 (constants); 13: no rescaling
      background_sqrt_s_factor: 1.0 # backgrounds keep their 13 TeV cross sections unless set (see below)
      backgrounds: [qcd, ttbar]     # REQUIRED: background dataset names (default of both analyses)
      resonant: [X_500, X_1000]     # resonant signal datasets, one patch per m_X (m_x from metadata);
                                    #   or {datasets: [...], backgrounds: [...], regions: [...]} to
                                    #   override the backgrounds or regions of this analysis
      nonresonant:
        basis: [hh_kl1, hh_kl5, hh_kl10]        # exactly three datasets at distinct kappa_lambda
        backgrounds: [qcd_dl1r, ttbar_dl1r]     # optional override (e.g. another b-tag working point)
        regions: [signal]                       # optional override of the regions
        kappa_lambda: {start: -6, stop: 14, num: 81}   # the grid (or an explicit list)
        hypothesis: {kappa_lambda: 1.0, mu: 1.0}       # Asimov hypothesis of the kappa analyses
        check: hh_kl3               # optional fourth sample: morphing closure (chi2) in the summary
      systematics:
        lumi: 0.017                 # relative luminosity uncertainty (constants default)
        staterror: true             # MC statistical uncertainty from the sum of squared weights
        normsys:                    # normalisation uncertainties
          - {name: qcd_norm, samples: [qcd], hi: 1.10, lo: 0.90}
        histosys:                   # shape uncertainties from "<name>_up"/"<name>_down" histograms
          - {name: jes, samples: [qcd, signal]}   # "signal": every signal sample
      data: asimov                  # Asimov of the stated hypotheses (resonant: background only,
                                    #   or {asimov: {mu: 0.0}}); or {dataset: data_obs}: a histogram
      equivalent_luminosity:        # optional: luminosity at which a baseline matches this Delta kappa
        baseline: {pairer: min_dr}  # region(s)/pairer of the baseline selection
        luminosity: 300             # luminosity of this (the better) selection
        methods: [profile]          # profile and/or cls

Background cross sections: the reference rescales the 13 TeV *signal* cross sections to 14 TeV
(PHYSICS.md, Statistics); PHYSICS.md gives no 14 TeV background cross section, so backgrounds keep
their 13 TeV normalisation unless ``background_sqrt_s_factor`` says otherwise. A given dataset
(``data: {dataset: ...}``) is scaled by L / L0 like everything else.

Outputs, per luminosity in ``<output_dir>/statistics/lumi_<L>/``: ``resonant_bkgonly.json`` +
``resonant_patchset.json`` and ``nonresonant_bkgonly.json`` + ``nonresonant_patchset.json``
(``pyhf patchset apply`` gives the full workspaces), ``limits_resonant.json``/``.csv``/``.png``
(Brazil band), ``kappa_lambda.json``/``.png``; ``<output_dir>/statistics/summary.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import pathlib
import pickle
import time
from collections.abc import Mapping

import numpy as np
import pyhf

from .. import constants
from . import plots
from .kappa import equivalent_luminosity, kappa_cls_scan, kappa_profile_scan
from .likelihood import FastModel
from .limits import AsymptoticLimits, transfer_pars
from .morphing import morph_template, morph_values
from .workspace import (
    Channels,
    MissingInputError,
    NormSys,
    Sample,
    SampleSystematics,
    build_patchset,
    extract_template,
    observable_edges,
    patch_name,
)

__all__ = ["add_arguments", "main", "run_statistics", "run_statistics_for_job", "StatisticsConfig"]

SIGNAL = "signal"


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


# ---------------------------------------------------------------------- configuration
class StatisticsConfig:
    """The parsed ``statistics:`` section (see the module docstring)."""

    def __init__(self, cfg: Mapping, metadata: Mapping) -> None:
        cfg = dict(cfg or {})
        self.observable = cfg.get("observable", "m_hh")
        regions = cfg.get("regions", cfg.get("region", "signal"))
        self.regions = [regions] if isinstance(regions, str) else list(regions)
        self.pairer = cfg.get("pairer", "min_dr")
        self.l0 = float(metadata.get("luminosity", 0.0))
        if self.l0 <= 0:
            raise MissingInputError("metadata has no positive 'luminosity'")
        lumis = cfg.get("luminosity", [constants.REFERENCE_LUMINOSITY])
        self.luminosities = [float(x) for x in (lumis if isinstance(lumis, list | tuple) else [lumis])]
        sqrt_s = float(cfg.get("sqrt_s", 14))
        if sqrt_s not in (13.0, 14.0):
            raise ValueError(f"statistics.sqrt_s must be 13 or 14, got {sqrt_s}")
        self.sqrt_s = sqrt_s
        self.signal_factor = constants.SQRT_S_RESCALE_13_TO_14 if sqrt_s == 14.0 else 1.0
        self.background_factor = float(cfg.get("background_sqrt_s_factor", 1.0))
        if "backgrounds" not in cfg or not cfg["backgrounds"]:
            raise ValueError("statistics.backgrounds is missing (list of background dataset names)")
        self.backgrounds = list(cfg["backgrounds"])
        res = cfg.get("resonant") or []
        if isinstance(res, Mapping):
            self.resonant = list(res.get("datasets") or [])
            self.resonant_backgrounds = list(res.get("backgrounds") or self.backgrounds)
            self.resonant_regions = _as_list(res.get("regions") or self.regions)
        else:
            self.resonant = list(res)
            self.resonant_backgrounds = self.backgrounds
            self.resonant_regions = self.regions
        nr = cfg.get("nonresonant") or {}
        self.nonresonant_regions = _as_list(nr.get("regions") or self.regions)
        self.nonresonant_backgrounds = list(nr.get("backgrounds") or self.backgrounds)
        self.basis = list(nr.get("basis") or [])
        if self.basis and len(self.basis) != 3:
            raise ValueError(f"statistics.nonresonant.basis needs exactly three datasets, got {self.basis}")
        grid = nr.get("kappa_lambda", {"start": -6.0, "stop": 14.0, "num": 81})
        if isinstance(grid, Mapping):
            grid = np.linspace(float(grid["start"]), float(grid["stop"]), int(grid["num"]))
        self.kappa_grid = [float(k) for k in grid]
        hyp = nr.get("hypothesis") or {}
        self.kappa_hypothesis = float(hyp.get("kappa_lambda", constants.KAPPA_LAMBDA_SM))
        self.kappa_mu = float(hyp.get("mu", 1.0))
        self.check = nr.get("check")
        syst = cfg.get("systematics") or {}
        self.lumi_uncertainty = float(syst.get("lumi", constants.DEFAULT_LUMI_RELATIVE_UNCERTAINTY))
        self.staterror = bool(syst.get("staterror", True))
        self.normsys = [dict(x) for x in syst.get("normsys") or []]
        self.histosys = [dict(x) for x in syst.get("histosys") or []]
        data = cfg.get("data", "asimov")
        self.data_dataset = None
        self.resonant_mu = 0.0
        if isinstance(data, Mapping) and "dataset" in data:
            self.data_dataset = str(data["dataset"])
        elif isinstance(data, Mapping) and "asimov" in data:
            self.resonant_mu = float((data["asimov"] or {}).get("mu", 0.0))
        elif data != "asimov":
            raise ValueError(f"statistics.data must be 'asimov', {{asimov: {{mu: ..}}}} or {{dataset: name}}, got {data!r}")
        self.equivalent = cfg.get("equivalent_luminosity")
        datasets = metadata.get("datasets", {})
        for name in self.all_backgrounds + self.resonant + self.basis + ([self.check] if self.check else []):
            if name not in datasets:
                raise MissingInputError(f"dataset {name!r} not in metadata.json datasets")

    @property
    def all_backgrounds(self) -> list[str]:
        out = []
        for name in self.backgrounds + self.resonant_backgrounds + (self.nonresonant_backgrounds if self.basis else []):
            if name not in out:
                out.append(name)
        return out

    def systematics_for(self, sample: str, is_signal: bool) -> SampleSystematics:
        def applies(entry: Mapping) -> bool:
            samples = entry.get("samples", "all")
            if samples == "all":
                return True
            samples = [samples] if isinstance(samples, str) else list(samples)
            return sample in samples or (is_signal and SIGNAL in samples)

        for entry in self.normsys + self.histosys:
            if "name" not in entry:
                raise ValueError(f"statistics.systematics entry without a name: {entry}")
        return SampleSystematics(
            lumi=True,
            staterror=self.staterror,
            normsys=[NormSys(e["name"], float(e["hi"]), float(e["lo"])) for e in self.normsys if applies(e)],
            histosys=[e["name"] for e in self.histosys if applies(e)],
        )


# ---------------------------------------------------------------------- inputs
class _Inputs:
    """Templates read once at the file's luminosity for one selection (regions x pairer)."""

    def __init__(self, cfg: StatisticsConfig, histograms: Mapping, metadata: Mapping, *, regions=None, pairer=None):
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

    def channels(self, scale: float, names: list[str]) -> Channels:
        return Channels(
            {r: [self.backgrounds[b][r].scaled(scale) for b in names] for r in self.regions},
            self.cfg.lumi_uncertainty,
        )

    def xsec(self, name: str) -> float:
        """sigma x BR in fb at the analysis' sqrt(s)."""
        return float(self.meta[name]["xsec_fb"]) * self.cfg.signal_factor

    @property
    def basis_kappas(self) -> list[float]:
        ks = [self.meta[b].get("kappa_lambda") for b in self.cfg.basis]
        if any(k is None for k in ks):
            raise MissingInputError(f"a non-resonant basis dataset has no kappa_lambda in metadata: {self.cfg.basis}")
        return [float(k) for k in ks]

    def signal_at(self, scale: float):
        ks = self.basis_kappas

        def at(kappa: float) -> dict[str, Sample]:
            return {
                r: Sample(
                    SIGNAL,
                    morph_template(ks, [b[r].template.scaled(scale) for b in self.basis], kappa, clip=True),
                    self.basis[0][r].systematics,
                )
                for r in self.regions
            }

        return at

    def xsec_at(self, kappa: float) -> float:
        return float(morph_values(self.basis_kappas, [self.xsec(b) for b in self.cfg.basis], kappa))


# ---------------------------------------------------------------------- analyses
def _write_json(path: pathlib.Path, obj) -> pathlib.Path:
    path.write_text(json.dumps(obj, indent=1, sort_keys=False) + "\n")
    return path


def _resonant(inp: _Inputs, scale: float, lumi: float, out: pathlib.Path) -> dict:
    cfg = inp.cfg
    chans = inp.channels(scale, cfg.resonant_backgrounds)
    signals = sorted(cfg.resonant, key=lambda s: float(inp.meta[s].get("m_x") or 0.0))
    sig = {s: {r: x.scaled(scale) for r, x in inp.resonant[s].items()} for s in signals}
    per_patch_data = inp.data is None and cfg.resonant_mu != 0.0
    if inp.data is not None:
        obs = {r: inp.data[r] * scale for r in inp.regions}
        data_label = f"observed (dataset {cfg.data_dataset!r} x L/L0)"
    else:
        obs = chans.asimov()
        data_label = (
            "asimov (background only)"
            if not per_patch_data
            else f"asimov (background + {cfg.resonant_mu:g} x each patch's signal)"
        )
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
            asimov = chans.asimov(sig[s], cfg.resonant_mu)
            data[: fast.nbins] = np.concatenate([asimov[ch] for ch in fast.model.config.channels])
        init = None if prev is None else transfer_pars(prev[0], prev[1], fast)
        calc = AsymptoticLimits(fast, data, level=constants.CLS_LEVEL, init=init)
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
            }
        )
    result = {
        "luminosity_fb": lumi,
        "sqrt_s_TeV": cfg.sqrt_s,
        "cl": 1.0 - constants.CLS_LEVEL,
        "data": data_label,
        "xsec_definition": "sigma(pp -> X -> hh) x B(hh -> 4b), fb; expected = [-2, -1, 0, +1, +2] sigma",
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
            + ["data"]
        )
        for r in rows:
            w.writerow(
                [r["m_x"], r["dataset"], r["xsec_fb"], r["mu_observed"], *r["mu_expected"], r["xsec_limit_observed_fb"]]
                + r["xsec_limit_expected_fb"]
                + [data_label]
            )
    if rows:
        plots.brazil_band(
            [r["m_x"] for r in rows],
            np.array([r["xsec_limit_expected_fb"] for r in rows]),
            [r["xsec_limit_observed_fb"] for r in rows],
            out / "limits_resonant.png",
            luminosity=lumi,
            observed_label="Observed" if inp.data is not None else "Asimov",
        )
    return result


def _kappa_data(inp: _Inputs, scale: float):
    cfg = inp.cfg
    chans = inp.channels(scale, cfg.nonresonant_backgrounds)
    if inp.data is not None:
        return chans, {r: inp.data[r] * scale for r in inp.regions}, f"observed (dataset {cfg.data_dataset!r} x L/L0)"
    obs = chans.asimov(inp.signal_at(scale)(cfg.kappa_hypothesis), cfg.kappa_mu)
    label = f"asimov (background + {cfg.kappa_mu:g} x signal(kappa_lambda={cfg.kappa_hypothesis:g}))"
    return chans, obs, label


def _kappa_width(inp: _Inputs, scale: float, method: str) -> float | None:
    chans, obs, _ = _kappa_data(inp, scale)
    grid = inp.cfg.kappa_grid
    if method == "profile":
        return kappa_profile_scan(chans, inp.signal_at(scale), grid, obs, mu=inp.cfg.kappa_mu, refine=False)["interval"]["width"]
    return kappa_cls_scan(chans, inp.signal_at(scale), grid, obs)["expected"]["width"]


def _closure(inp: _Inputs) -> dict:
    """Morphed template vs the directly generated fourth sample: chi2 / ndf over non-empty bins."""
    name = inp.cfg.check
    k = inp.meta[name].get("kappa_lambda")
    if k is None:
        raise MissingInputError(f"check dataset {name!r} has no kappa_lambda in metadata")
    chi2, ndf = 0.0, 0
    for r in inp.regions:
        m = morph_template(inp.basis_kappas, [b[r].template for b in inp.basis], float(k))
        d = inp.check[r].template
        var = m.sumw2 + d.sumw2
        ok = var > 0
        chi2 += float(np.sum((m.yields[ok] - d.yields[ok]) ** 2 / var[ok]))
        ndf += int(ok.sum())
    return {"dataset": name, "kappa_lambda": float(k), "chi2": chi2, "ndf": ndf}


def _nonresonant(inp: _Inputs, scale: float, lumi: float, out: pathlib.Path) -> dict:
    cfg = inp.cfg
    chans, obs, label = _kappa_data(inp, scale)
    signal_at = inp.signal_at(scale)
    bkg_ws = chans.background_only(obs)
    patches = [(patch_name("kl", k), [k], chans.signal_patch(bkg_ws, signal_at(k))) for k in cfg.kappa_grid]
    pset = build_patchset(bkg_ws, patches, label="kappa_lambda", description=f"hh4b kappa_lambda grid, {lumi:g} fb-1")
    _write_json(out / "nonresonant_bkgonly.json", bkg_ws)
    _write_json(out / "nonresonant_patchset.json", pset)
    cls = kappa_cls_scan(chans, signal_at, cfg.kappa_grid, obs, xsec_at=inp.xsec_at)
    prof = kappa_profile_scan(chans, signal_at, cfg.kappa_grid, obs, mu=cfg.kappa_mu)
    result = {
        "luminosity_fb": lumi,
        "sqrt_s_TeV": cfg.sqrt_s,
        "data": label,
        "basis": {"datasets": cfg.basis, "kappa_lambda": inp.basis_kappas},
        "cls_mu_poi": cls,
        "profile_likelihood": prof,
    }
    if cfg.check:
        result["morphing_closure"] = _closure(inp)
    _write_json(out / "kappa_lambda.json", result)
    plots.kappa_scans(cls, prof, out / "kappa_lambda.png", luminosity=lumi)
    return result


def run_statistics(config: dict, histograms: dict, metadata: dict, output_dir: pathlib.Path) -> dict:
    """Run every configured analysis; write ``<output_dir>/statistics/``; return a summary dict.

    Args:
        config: the job's ``statistics:`` section.
        histograms: ``{name: hist.Hist}`` from the processor (``histograms.pkl``).
        metadata: ``metadata.json`` (luminosity and per-dataset information).
        output_dir: the job's output folder.
    """
    t0 = time.perf_counter()
    cfg = StatisticsConfig(config, metadata)
    # each analysis reads its own signal regions (e.g. the resonant one adds the pT cuts)
    inp_res = _Inputs(cfg, histograms, metadata, regions=cfg.resonant_regions) if cfg.resonant else None
    inp = _Inputs(cfg, histograms, metadata, regions=cfg.nonresonant_regions) if cfg.basis else None
    root = pathlib.Path(output_dir) / "statistics"
    root.mkdir(parents=True, exist_ok=True)
    summary: dict = {"luminosities": {}, "files": []}
    for lumi in cfg.luminosities:
        scale = lumi / cfg.l0
        out = root / f"lumi_{lumi:g}"
        out.mkdir(exist_ok=True)
        entry: dict = {}
        if cfg.resonant:
            res = _resonant(inp_res, scale, lumi, out)
            entry["resonant"] = {
                "data": res["data"],
                "xsec_limits_fb": {
                    f"{p['m_x']:g}": {"observed": p["xsec_limit_observed_fb"], "expected": p["xsec_limit_expected_fb"][2]}
                    for p in res["points"]
                },
            }
        if cfg.basis:
            nr = _nonresonant(inp, scale, lumi, out)
            entry["kappa_lambda"] = {
                "data": nr["data"],
                "cls_expected": nr["cls_mu_poi"]["expected"],
                "cls_observed": nr["cls_mu_poi"]["observed"],
                "profile": nr["profile_likelihood"]["interval"],
                "profile_best_fit": nr["profile_likelihood"]["best_fit"],
            }
            if "morphing_closure" in nr:
                entry["kappa_lambda"]["morphing_closure"] = nr["morphing_closure"]
        summary["luminosities"][f"{lumi:g}"] = entry
        summary["files"] += sorted(str(p) for p in out.iterdir())
    if cfg.equivalent and cfg.basis:
        summary["equivalent_luminosity"] = _equivalent(cfg, inp, histograms, metadata)
    summary["seconds"] = round(time.perf_counter() - t0, 2)
    _write_json(root / "summary.json", summary)
    return summary


def _equivalent(cfg: StatisticsConfig, inp: _Inputs, histograms, metadata) -> dict:
    eq = dict(cfg.equivalent)
    base = dict(eq.get("baseline") or {})
    regions = base.get("regions", base.get("region", cfg.regions))
    regions = [regions] if isinstance(regions, str) else list(regions)
    baseline = _Inputs(cfg, histograms, metadata, regions=regions, pairer=base.get("pairer", cfg.pairer))
    lref = float(eq.get("luminosity", constants.REFERENCE_LUMINOSITY))
    out = {"baseline": {"regions": regions, "pairer": base.get("pairer", cfg.pairer)}, "luminosity_fb": lref}
    for method in eq.get("methods", ["profile"]):
        target = _kappa_width(inp, lref / cfg.l0, method)
        lumi = None
        if target is not None:
            lumi = equivalent_luminosity(
                lambda L: _kappa_width(baseline, L / cfg.l0, method), target, (lref / 30.0, lref * 30.0), rtol=1e-3
            )
        out[method] = {"delta_kappa_lambda": target, "equivalent_luminosity_fb": lumi}
    return out


# ---------------------------------------------------------------------- command line
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``hhcoffea limits JOB.yaml [--output DIR] [--luminosity L ...]``."""
    parser.add_argument("job", type=pathlib.Path, help="job YAML file (its statistics: section)")
    parser.add_argument(
        "--output", type=pathlib.Path, default=None, help="folder with histograms.pkl and metadata.json (default: the job's output:)"
    )
    parser.add_argument(
        "--luminosity", type=float, action="append", default=None, help="fb^-1; repeat for several (overrides the job file)"
    )


def _load_outputs(out: pathlib.Path) -> tuple[dict, dict]:
    hpath, mpath = out / "histograms.pkl", out / "metadata.json"
    for p in (hpath, mpath):
        if not p.exists():
            raise MissingInputError(f"{p} not found (run the processor first)")
    with open(hpath, "rb") as f:
        histograms = pickle.load(f)
    return histograms, json.loads(mpath.read_text())


def run_statistics_for_job(job, console=None) -> dict:
    """For the runner: ``job.config["statistics"]`` on the histograms in ``job.output``."""
    out = pathlib.Path(job.output)
    histograms, metadata = _load_outputs(out)
    summary = run_statistics(dict(job.config.get("statistics") or {}), histograms, metadata, out)
    text = format_summary(summary)
    if console is not None:
        console.print(text, markup=False)  # "[fb]" and "[lo, hi]" are text, not rich markup
    return summary


def format_summary(summary: dict) -> str:
    """A few readable lines: limits per m_X and the kappa_lambda intervals per luminosity."""

    def iv(d: dict) -> str:
        lo = "open" if d["lower"] is None else f"{d['lower']:.2f}"
        hi = "open" if d["upper"] is None else f"{d['upper']:.2f}"
        w = "" if d["width"] is None else f" (width {d['width']:.2f})"
        return f"[{lo}, {hi}]{w}"

    lines = []
    for lumi, entry in summary["luminosities"].items():
        if "resonant" in entry:
            r = entry["resonant"]
            lims = ", ".join(f"{m}: {v['expected']:.3g}/{v['observed']:.3g}" for m, v in r["xsec_limits_fb"].items())
            lines.append(f"{lumi} fb-1 resonant 95% CL sigma x B limits [fb] (m_X: expected/observed; {r['data']}): {lims}")
        if "kappa_lambda" in entry:
            k = entry["kappa_lambda"]
            lines.append(
                f"{lumi} fb-1 kappa_lambda ({k['data']}): CLs expected {iv(k['cls_expected'])}, "
                f"observed {iv(k['cls_observed'])}; profile likelihood {iv(k['profile'])}"
            )
    if "equivalent_luminosity" in summary:
        eq = summary["equivalent_luminosity"]
        for method, v in eq.items():
            if isinstance(v, dict) and "equivalent_luminosity_fb" in v:
                lumi = v["equivalent_luminosity_fb"]
                width = v["delta_kappa_lambda"]
                lines.append(
                    f"equivalent luminosity ({method}): the baseline ({eq['baseline']['pairer']}) needs "
                    + ("no luminosity in the searched range" if lumi is None else f"{lumi:.0f} fb-1")
                    + " to reach the Delta kappa_lambda "
                    + ("(open interval)" if width is None else f"{width:.2f}")
                    + f" of this selection at {eq['luminosity_fb']:g} fb-1"
                )
    return "\n".join(lines)


def main(args: argparse.Namespace) -> int:
    from ..job import load_job

    job = load_job(args.job)
    if args.luminosity:
        job.config.setdefault("statistics", {})
        job.config["statistics"] = dict(job.config["statistics"] or {}, luminosity=list(args.luminosity))
    if args.output:
        job.config["output"] = str(pathlib.Path(args.output).resolve())
    if not job.config.get("statistics"):
        raise MissingInputError(f"{args.job}: the job file has no 'statistics:' section")
    print(format_summary(run_statistics_for_job(job, console=None)))
    print(f"outputs: {job.output / 'statistics'}")
    return 0
