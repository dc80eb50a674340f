"""Fidelity of the fast emulation against showered samples (Pythia 8 + FastJet) and the seeds.

    python benchmarks/fidelity.py                       # table + plots; showers missing samples
    python benchmarks/fidelity.py --showered data/fidelity --n-shower 30000 --workers 2
    python benchmarks/fidelity.py --fast-only           # the fast side only (calibration loop)

For each signal sample (non-resonant kappa_lambda = 1, 5, -5; resonant m_X = 500) it compares,
on four-tag events (>= 4 b-tagged jets with pT > 40, |eta| < 2.5, the processor's cut):

* **matched**: the fraction that is fully reconstructable (each b quark of a Higgs ΔR < 0.4
  matched to its own jet among all jets with pT >= 20 GeV, no quark with two jets in its cone);
  seed 000 tables 1-3 (SM 0.797, kappa_lambda = 5 0.745, resonant 0.806).
* **jets 4/5/>=6**: jet multiplicity (all jets pT >= 20 GeV) of the matched events; seed 000
  table 1: SM 35% / 36% / 29%.
* **m_h1, m_h2**: peak (mode of 2 GeV bins, smoothed) of the truth-paired candidate masses, h1
  the one with the higher scalar-sum jet pT; the reference analysis centres its X_hh on 120 / 110.
* **min-ΔR efficiency**: fraction of matched events where ``min_dr`` gets both Higgs right; seed
  000 table 24: 0.644 / 0.809 / 0.395 at kappa_lambda = -5 / 1 / 5.
* **b-quark jets** (every event, before the cut; ``quark_jets``): per bin of the quark's pT, the
  fraction with a jet within ΔR < 0.1 and < 0.4, the median response pT_jet / pT_quark and the
  fraction whose jet passes 40 GeV: how the shower's losses depend on the b quark's energy.

Fractions carry binomial statistical errors, medians 1.2533 sigma / sqrt(n).

Showered samples are slow (~80 events/s per worker): they are made once into ``--showered`` and
reused. The fast samples are made in memory each time (the same hard-process settings).
Writes ``fidelity.md`` and ``fidelity.png`` to ``--output``.

Backgrounds (``--background OUTPUT``: a processor output folder such as ``output/demo``, read from
its ``cutflow.json`` and ``metadata.json``, so the numbers are the processor's own):

    python benchmarks/fidelity.py --background output/demo --job jobs/demo.yaml --output output/fidelity_bkg

* **yields**: four-tag and signal-region cross sections [fb] of each background at its working
  point, against the seeds' QCD four-tag 6.03e3 fb (MV2c10-70, seed 001 table 3) and the seeds'
  bound ttbar / QCD < 10% (seed 003 sec. II.B).
* **efficiencies in the seeds' convention**: the seeds divide by every event of their generated
  pp -> bbbb sample, whose generator-level cuts and cross section they do not give (seed 003 sec.
  V.B, VI.B), the emulation by the events passing its generator-level cut (b pT > 30, |eta| < 2.7;
  2.88e5 fb). Per end of the seeds' range it prints the emulation's efficiency, their ratio and the
  generated cross section sigma_SR / efficiency_seeds the seeds' sample would need for equal
  yields, and the two ratios that need no denominator: highest / lowest pairing, and
  non-resonant / resonant.
* **kappa_lambda** (``--job``): the cut-based min-dR, SPA-Net and chi2 intervals at 300 fb-1 with the
  job's likelihood and with the seeds' (QCD only, no nuisance parameters: "a product of Poisson
  distributions", seed 003 sec. V.B; no ttbar, sec. II.B), next to table VI. Writes
  ``background.md`` to ``--output``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from hhcoffea import constants as C
from hhcoffea.columnar.truth import correct_higgs_count, match_quarks
from hhcoffea.emulation import generate, generate_arrays
from hhcoffea.emulation.calibration import four_tag_passed
from hhcoffea.events.model import higgs_bquarks
from hhcoffea.pairing import get_pairer

SAMPLES = {  # name: (process, m_x, kappa_lambda, showered seed); the fast sample uses seed + 1000
    "hh_k1": ("nonresonant", None, 1.0, 201),
    "X500": ("resonant", 500.0, None, 202),
    "hh_k5": ("nonresonant", None, 5.0, 203),
    "hh_km5": ("nonresonant", None, -5.0, 204),
}
# seed 000: tables 1-3 (matched fraction and its jet-multiplicity split) and table 24 (min-dR)
SEEDS = {
    "hh_k1": {"matched": 0.797, "jets": (0.280 / 0.797, 0.287 / 0.797, 0.229 / 0.797), "min_dr": 0.809},
    "X500": {"matched": 0.806, "jets": (0.316 / 0.806, 0.282 / 0.806, 0.208 / 0.806)},
    "hh_k5": {"matched": 0.745, "jets": (0.315 / 0.745, 0.255 / 0.745, 0.174 / 0.745), "min_dr": 0.395},
    "hh_km5": {"min_dr": 0.644},
}
MASS_BINS = np.arange(40.0, 200.0, 2.0)


def _events_from_file(path):
    with uproot.open(path) as f:
        a = f["Events"].arrays(library="ak")
    jets = ak.zip({"pt": a.Jet_pt, "eta": a.Jet_eta, "phi": a.Jet_phi, "mass": a.Jet_mass, "btag": a.Jet_btag & 1})
    gen = ak.zip({"pt": a.GenPart_pt, "eta": a.GenPart_eta, "phi": a.GenPart_phi, "mass": a.GenPart_mass,
                  "pdg_id": a.GenPart_pdgId, "mother": a.GenPart_genPartIdxMother})
    return jets, gen


def _events_from_arrays(arrays):
    j, g = arrays["Jet"], arrays["GenPart"]
    jets = ak.zip({"pt": j.pt, "eta": j.eta, "phi": j.phi, "mass": j.mass, "btag": j.btag & 1})
    gen = ak.zip({"pt": g.pt, "eta": g.eta, "phi": g.phi, "mass": g.mass, "pdg_id": g.pdgId, "mother": g.genPartIdxMother})
    return jets, gen


def _pair_mass(jets, pairs):
    """Masses (n, 2) and scalar pT sums (n, 2) of jet-index pairs (n, 2, 2) into ``jets``."""
    from hhcoffea.columnar.kinematics import invariant_mass, to_cartesian

    width = max(int(ak.max(ak.num(jets.pt))), 1)
    block = {f: ak.to_numpy(ak.fill_none(ak.pad_none(jets[f], width, clip=True), 0.0)).astype(np.float64)
             for f in ("pt", "eta", "phi", "mass")}
    rows = np.arange(len(pairs))[:, None, None]
    idx = np.maximum(pairs, 0)
    p = to_cartesian(*(block[f][rows, idx] for f in ("pt", "eta", "phi", "mass")))
    mass = invariant_mass(*(c.sum(axis=2) for c in p))
    return mass, block["pt"][rows, idx].sum(axis=2)


def measure(jets, gen) -> dict:
    """The fidelity quantities of one sample (see the module docstring)."""
    quarks = quark_jets(jets, gen)
    tagged = four_tag_passed(jets)
    jets, gen = jets[tagged], gen[tagged]
    bq = higgs_bquarks(gen)
    matched, higgs_id, ambiguous = match_quarks(jets, bq, n_higgs=2)
    # min-dR on the selected jets (pT > 40, |eta| < 2.5), mapped back to all-jet indices
    good = (jets.pt > C.FOUR_TAG_PT_MIN) & (np.abs(jets.eta) < C.FOUR_TAG_ETA_MAX)
    selected = jets[good]
    position = ak.local_index(jets.pt)[good]
    result = get_pairer("min_dr")(selected)
    width = max(int(ak.max(ak.num(position))), 1)
    pos = ak.to_numpy(ak.fill_none(ak.pad_none(position, width, clip=True), -1))
    chosen = np.where(result.higgs_jet_indices >= 0,
                      np.take_along_axis(pos[:, None, :].repeat(2, 1), np.maximum(result.higgs_jet_indices, 0), axis=2), -1)
    n_correct, full = correct_higgs_count(chosen, matched, higgs_id, ambiguous)
    n_jets = ak.to_numpy(ak.num(jets.pt))[full]
    # truth pairs of the matched events: the two jets of each Higgs
    true_pairs = np.stack([np.sort(np.where(higgs_id == h, matched, 10**6), axis=1)[:, :2] for h in (0, 1)], axis=1)
    m, spt = _pair_mass(jets[full], true_pairs[full])
    lead = np.argmax(spt, axis=1)
    m_h1 = np.take_along_axis(m, lead[:, None], axis=1)[:, 0]
    m_h2 = np.take_along_axis(m, 1 - lead[:, None], axis=1)[:, 0]
    return {
        "n_events": int(len(tagged)), "n_four_tag": int(tagged.sum()), "n_matched": int(full.sum()),
        "m_h1_median_err": _median_error(m_h1), "m_h2_median_err": _median_error(m_h2),
        "four_tag_eff": float(tagged.mean()),
        "matched": float(full.mean()),
        "jets": tuple(float(np.mean(k)) for k in (n_jets == 4, n_jets == 5, n_jets >= 6)),
        "m_h1": _peak(m_h1), "m_h2": _peak(m_h2),
        "m_h1_median": float(np.median(m_h1)), "m_h2_median": float(np.median(m_h2)),
        "min_dr": float((n_correct[full] == 2).mean()),
        "hist_h1": np.histogram(m_h1, MASS_BINS)[0], "hist_h2": np.histogram(m_h2, MASS_BINS)[0],
        "n_jets_hist": np.bincount(np.minimum(n_jets, 10), minlength=11),
        "quarks": quarks,
    }


QUARK_PT_BINS = np.array([20.0, 30, 40, 50, 60, 80, 100, 130, 170, 250, 1000])


def quark_jets(jets, gen) -> dict:
    """Per b quark from h (|eta| < 2.4, no other Higgs b quark within dR < 0.8), in bins of the
    quark's pT (``QUARK_PT_BINS``; every event, before any cut): the fraction with a jet (pT >= 20)
    within dR < 0.1 and < 0.4 of it, the median response pT_jet / pT_quark of the nearest jet
    within 0.4, and the fraction whose jet within 0.4 has pT > 40 GeV (the four-tag threshold)."""
    from hhcoffea.columnar.kinematics import delta_r

    def block(a, width, fill):
        return ak.to_numpy(ak.fill_none(ak.pad_none(a, width, clip=True), fill)).astype(np.float64)

    bq = higgs_bquarks(gen)
    q_pt, q_eta, q_phi = (block(bq[f], 4, np.nan) for f in ("pt", "eta", "phi"))
    width = max(int(ak.max(ak.num(jets.pt))), 1)
    j_pt, j_eta, j_phi = (block(jets[f], width, np.nan) for f in ("pt", "eta", "phi"))
    dr = delta_r(q_eta[:, :, None], q_phi[:, :, None], j_eta[:, None, :], j_phi[:, None, :])
    dr = np.where(np.isfinite(dr), dr, np.inf)
    nearest = np.argmin(dr, axis=2)
    d = np.min(dr, axis=2)
    pt_near = np.take_along_axis(np.nan_to_num(j_pt), nearest, axis=1)
    dq = delta_r(q_eta[:, :, None], q_phi[:, :, None], q_eta[:, None, :], q_phi[:, None, :])
    dq[:, np.arange(4), np.arange(4)] = np.inf
    use = (np.abs(q_eta) < 2.4) & (np.nanmin(dq, axis=2) > 0.8)
    b = np.digitize(q_pt[use], QUARK_PT_BINS) - 1
    d, pt_near, q = d[use], pt_near[use], q_pt[use]
    out = {k: [] for k in ("n", "within_0.1", "within_0.4", "response", "above_40")}
    for i in range(len(QUARK_PT_BINS) - 1):
        s = b == i
        inside = s & (d < 0.4)
        out["n"].append(int(s.sum()))
        out["within_0.1"].append(float(np.mean(d[s] < 0.1)) if s.any() else float("nan"))
        out["within_0.4"].append(float(np.mean(d[s] < 0.4)) if s.any() else float("nan"))
        out["response"].append(float(np.median(pt_near[inside] / q[inside])) if inside.any() else float("nan"))
        out["above_40"].append(float(np.mean(pt_near[s][d[s] < 0.4] > C.FOUR_TAG_PT_MIN) * np.mean(d[s] < 0.4)) if s.any() else float("nan"))
    return out


def quark_table(results: dict) -> str:
    """Markdown: ``quark_jets`` fast against shower, per sample and quark-pT bin."""
    lines = ["| sample | b-quark pT [GeV] | jet within ΔR 0.1: shower / fast | within 0.4 | median pT_jet / pT_q "
             "| jet within 0.4 above 40 GeV |", "|---|---|---|---|---|---|"]
    for name, by_source in results.items():
        if "shower" not in by_source or "quarks" not in by_source["shower"]:
            continue
        sh, fa = by_source["shower"]["quarks"], by_source["fast"]["quarks"]
        for i in range(len(QUARK_PT_BINS) - 1):
            cells = [f"{sh[k][i]:.3f} / {fa[k][i]:.3f}" for k in ("within_0.1", "within_0.4", "response", "above_40")]
            lines.append(f"| {name} | {QUARK_PT_BINS[i]:.0f}–{QUARK_PT_BINS[i + 1]:.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _median_error(values):
    """Statistical error of a median: 1.2533 sigma / sqrt(n), sigma from the interquartile range."""
    if len(values) < 2:
        return float("nan")
    q25, q75 = np.percentile(values, [25, 75])
    return float(1.2533 * (q75 - q25) / 1.349 / np.sqrt(len(values)))


def _binomial_error(p, n):
    return float(np.sqrt(p * (1.0 - p) / n)) if n > 0 else float("nan")


def _peak(values):
    """Mode of 2 GeV bins after a 5-bin triangular smoothing (stable on a few hundred events)."""
    h, edges = np.histogram(values, MASS_BINS)
    smooth = np.convolve(h, np.array([1, 2, 3, 2, 1]) / 9.0, mode="same")
    i = int(np.argmax(smooth))
    return float(0.5 * (edges[i] + edges[i + 1]))


def _showered_file(folder: Path, name: str, n: int, workers: int) -> Path:
    process, m_x, kappa, seed = SAMPLES[name]
    path = folder / f"{name}.root"
    side = Path(str(path) + ".json")
    meta = json.loads(side.read_text()) if path.exists() and side.exists() else {}
    if not (meta.get("shower") == "pythia" and meta.get("seed") == seed and meta.get("n_generated", 0) >= n):
        start = time.perf_counter()
        generate(process, n, path, seed=seed, m_x=m_x, kappa_lambda=kappa, shower="pythia", workers=workers, progress=True)
        print(f"# showered {name}: {n} events in {time.perf_counter() - start:.0f} s")
    return path


def _fmt(v, spec="{:.3f}"):
    return "—" if v is None else spec.format(v)


def table(results: dict) -> str:
    """Markdown table: one row per sample and source (fast, showered, seeds), with the binomial
    statistical errors of the fractions and the errors of the medians."""
    lines = ["| sample | source | four-tag events (efficiency) | matched | jets 4 / 5 / ≥6 (matched) "
             "| m_h1 / m_h2 peak [GeV] | m_h1 / m_h2 median [GeV] | min-ΔR eff. |",
             "|---|---|---|---|---|---|---|---|"]
    for name, by_source in results.items():
        for source, r in by_source.items():
            jets = r.get("jets")
            if source == "seeds":
                jets_s = "—" if jets is None else " / ".join(f"{100 * x:.0f}%" for x in jets)
                lines.append(f"| {name} | seeds | — | {_fmt(r.get('matched'))} | {jets_s} | 120 / 110 (X_hh centres) "
                             f"| — | {_fmt(r.get('min_dr'))} |")
                continue
            n4, nm = r["n_four_tag"], r["n_matched"]
            eff = r["four_tag_eff"]
            n4_s = f"{n4:,} ({100 * eff:.2f} ± {100 * _binomial_error(eff, r['n_events']):.2f}%)"
            matched = f"{r['matched']:.3f} ± {_binomial_error(r['matched'], n4):.3f}"
            jets_s = " / ".join(f"{100 * x:.0f}±{100 * _binomial_error(x, nm):.0f}%" for x in jets)
            peaks = f"{r['m_h1']:.0f} / {r['m_h2']:.0f}"
            medians = f"{r['m_h1_median']:.1f}±{r['m_h1_median_err']:.1f} / {r['m_h2_median']:.1f}±{r['m_h2_median_err']:.1f}"
            min_dr = f"{r['min_dr']:.3f} ± {_binomial_error(r['min_dr'], nm):.3f}"
            lines.append(f"| {name} | {source} | {n4_s} | {matched} | {jets_s} | {peaks} | {medians} | {min_dr} |")
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """Top: four-tag efficiency, matched fraction, min-ΔR efficiency and jet multiplicity per
    sample (statistical errors), and the b-quark jet within ΔR 0.1 / above 40 GeV against the
    quark's pT (SM); bottom: truth-paired m_h1 / m_h2 of every sample, fast against shower."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(2, 5, figsize=(25, 8.5))
    centres = 0.5 * (MASS_BINS[1:] + MASS_BINS[:-1])
    colours = {"fast": "tab:blue", "shower": "tab:red", "seeds": "black"}
    for ax, key, n_key, title in ((axes[0, 0], "four_tag_eff", "n_events", "four-tag efficiency"),
                                  (axes[0, 1], "matched", "n_four_tag", "fully matched four-tag fraction"),
                                  (axes[0, 2], "min_dr", "n_matched", "min-ΔR pairing efficiency (matched events)")):
        for k, source in enumerate(("fast", "shower", "seeds")):
            pts = [(i + 0.2 * (k - 1), results[n][source][key], results[n][source].get(n_key))
                   for i, n in enumerate(names) if results[n].get(source, {}).get(key) is not None]
            if not pts:
                continue
            xs, ys, ns = zip(*pts)
            errs = [0.0 if n is None else _binomial_error(y, n) for y, n in zip(ys, ns)]
            ax.errorbar(xs, ys, yerr=errs, fmt="o", color=colours[source], label=source)
        ax.set_xticks(range(len(names)), names)
        ax.set_title(title)
        ax.legend()
    ax = axes[0, 3]
    for k, source in enumerate(("fast", "shower", "seeds")):
        for j, (marker, label) in enumerate((("o", "4"), ("s", "5"), ("^", "≥6"))):
            pts = [(i + 0.2 * (k - 1), results[n][source]["jets"][j]) for i, n in enumerate(names)
                   if results[n].get(source, {}).get("jets") is not None]
            if pts:
                xs, ys = zip(*pts)
                ax.plot(xs, ys, marker, color=colours[source], label=f"{source}: {label} jets")
    ax.set_xticks(range(len(names)), names)
    ax.set_title("jets (pT ≥ 20 GeV) of matched events: 4 / 5 / ≥6")
    ax.legend(fontsize=7, ncol=3)
    ax = axes[0, 4]
    r = results.get("hh_k1", {})
    x = np.sqrt(QUARK_PT_BINS[1:] * QUARK_PT_BINS[:-1])
    for source in ("fast", "shower"):
        if "quarks" in r.get(source, {}):
            q = r[source]["quarks"]
            ax.plot(x, q["within_0.1"], "o-", color=colours[source], label=f"{source}: jet within ΔR 0.1")
            ax.plot(x, q["above_40"], "s--", color=colours[source], label=f"{source}: jet within 0.4, > 40 GeV")
    ax.set_xscale("log")
    ax.set_xticks([30, 50, 100, 200, 500], ["30", "50", "100", "200", "500"])
    ax.minorticks_off()
    ax.set_xlabel("b-quark pT [GeV]")
    ax.set_title("SM: b-quark jets against the quark's pT")
    ax.legend(fontsize=8)
    axes[1, 4].axis("off")
    for ax, name in zip(axes[1], names):
        for source in ("fast", "shower"):
            r = results.get(name, {}).get(source)
            if not r:
                continue
            for key, style in (("hist_h1", "-"), ("hist_h2", "--")):
                h = r[key] / max(r[key].sum(), 1)
                ax.step(centres, h, style, where="mid", color=colours[source], label=f"{source} {key[-2:]}")
        ax.axvline(120, color="grey", lw=0.5)
        ax.axvline(110, color="grey", lw=0.5, ls="--")
        ax.set_title(f"{name}: truth-paired m_h1 (solid), m_h2 (dashed)")
        ax.set_xlabel("mass [GeV]")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


# --- backgrounds ------------------------------------------------------------------------------
# the seeds' pairings of each cut-based analysis (seed 003 sec. III, V.A, VI.A) and its working point
SEED_PAIRINGS = {"resonant": ("min_dr", "dhh", "spanet"), "nonresonant": ("min_dr", "spanet")}
ANALYSIS_WORKING_POINT = {"resonant": C.RESONANT_WORKING_POINT, "nonresonant": C.NONRESONANT_WORKING_POINT}


def background_yields(output: Path) -> dict:
    """{dataset: {"process", "working_point", "analysis", "four_tag_fb", "pairers": {pairer:
    {"signal_region_fb", "efficiency", "n"}}}} from a processor output's cutflow and metadata,
    for every qcd/ttbar dataset; the analysis is the one whose working point the dataset has."""
    cutflow = json.loads((output / "cutflow.json").read_text())
    meta = json.loads((output / "metadata.json").read_text())
    lumi = float(meta["luminosity"])
    out = {}
    for name, m in meta["datasets"].items():
        if m.get("process") not in ("qcd", "ttbar") or name not in cutflow:
            continue
        analysis = next((a for a, wp in ANALYSIS_WORKING_POINT.items() if wp == m.get("working_point")), None)
        if analysis is None:
            continue
        entry = {"process": m["process"], "working_point": m["working_point"], "analysis": analysis, "pairers": {}}
        for pairer, by_analysis in cutflow[name].items():
            rows = {r["cut"]: r for r in by_analysis[analysis]}
            entry["four_tag_fb"] = rows["four_tag"]["weighted"] / lumi
            sr = rows["signal_region"]
            entry["pairers"][pairer] = {"signal_region_fb": sr["weighted"] / lumi,
                                        "efficiency": sr["weighted"] / rows["all"]["weighted"], "n": int(sr["events"])}
        out[name] = entry
    return out


def window_yields(output: Path, pairer: str = "min_dr") -> dict:
    """{dataset: {window: fb}} of the four-tag m_hh (the ``pairer``'s four jets; min-dR takes the
    four leading b-jets, the seeds' m_hh) in each of the seeds' windows that the histogram's
    edges hold (``constants.QCD_4B_XSEC_MHH_WINDOWS``), for the MV2c10 QCD datasets."""
    from hhcoffea.histograms import load_histogram

    meta = json.loads((output / "metadata.json").read_text())
    h = load_histogram(output, "m_hh")
    edges = h.axes["m_hh"].edges
    out = {}
    for name, m in meta["datasets"].items():
        if m.get("process") != "qcd" or m.get("working_point") != C.RESONANT_WORKING_POINT or name not in h.axes["dataset"]:
            continue
        values = h[{"dataset": name, "region": "four_tag", "pairer": pairer, "systematic": "nominal"}].values()
        for lo, hi in C.QCD_4B_XSEC_MHH_WINDOWS:
            if np.isclose(edges, lo).any() and np.isclose(edges, hi).any():
                inside = (edges[:-1] >= lo - 1e-9) & (edges[1:] <= hi + 1e-9)
                out.setdefault(name, {})[(lo, hi)] = float(values[inside].sum()) / float(meta["luminosity"])
    return out


def _pm(value, n):
    """value +- its Poisson error from n MC events."""
    return f"{value:.3g} ± {value / np.sqrt(n):.2g}" if n > 0 else f"{value:.3g}"


def background_table(yields: dict, windows: dict | None = None) -> str:
    """Markdown: yields per background, then the seeds' efficiencies against the emulation's."""
    pairers = sorted({p for e in yields.values() for p in e["pairers"]})
    lines = ["| dataset | working point (analysis) | four-tag [fb] | " + " | ".join(f"SR {p} [fb]" for p in pairers) + " |",
             "|---|---|---:|" + "---:|" * len(pairers)]
    for name, e in yields.items():
        cells = [_pm(e["pairers"][p]["signal_region_fb"], e["pairers"][p]["n"]) if p in e["pairers"] else "—" for p in pairers]
        lines.append(f"| {name} | {e['working_point']} ({e['analysis']}) | {e['four_tag_fb']:.4g} | " + " | ".join(cells) + " |")
    lines.append(f"| seeds: QCD | {C.RESONANT_WORKING_POINT} | {C.QCD_4B_XSEC_AFTER_FOUR_TAG:.4g} | "
                 + " | ".join("—" for _ in pairers) + " |")
    for name, by_window in (windows or {}).items():
        for (lo, hi), fb in by_window.items():
            ref = C.QCD_4B_XSEC_MHH_WINDOWS[(lo, hi)]
            lines.append(f"| {name}: four-tag, m_hh in [{lo:.0f}, {hi:.0f}] | {C.RESONANT_WORKING_POINT} | {fb:.4g} "
                         f"(seeds {ref:.3g}) | " + " | ".join("—" for _ in pairers) + " |")
    qcd = {e["analysis"]: (n, e) for n, e in yields.items() if e["process"] == "qcd"}
    tt = {e["analysis"]: (n, e) for n, e in yields.items() if e["process"] == "ttbar"}
    lines += ["", f"ttbar / QCD (seeds: below {C.REFERENCE_TTBAR_FRACTION_MAX:.0%}, and left out of their likelihood):"]
    for analysis in qcd:
        if analysis in tt:
            q, t = qcd[analysis][1], tt[analysis][1]
            sr = ", ".join(f"{p} {t['pairers'][p]['signal_region_fb'] / q['pairers'][p]['signal_region_fb']:.1%}"
                           for p in SEED_PAIRINGS[analysis] if p in t["pairers"] and p in q["pairers"])
            lines.append(f"- {analysis}: four-tag {t['four_tag_fb'] / q['four_tag_fb']:.1%}; signal region {sr}")
    lines += ["", "QCD selection efficiency, per generated event, against the seeds' range (their denominator: every "
              "event of their own generated sample, whose cuts and cross section they do not give):", "",
              "| analysis | seeds' pairings | emulation lowest / highest | seeds lowest / highest | emulation / seeds "
              "| sigma_gen the seeds' sample needs for equal yields [fb] | highest / lowest: emulation, seeds |",
              "|---|---|---|---|---|---|---|"]
    ends = {}
    for analysis, (name, e) in qcd.items():
        have = [p for p in SEED_PAIRINGS[analysis] if p in e["pairers"]]
        if not have:
            continue
        lo = min(have, key=lambda p: e["pairers"][p]["efficiency"])
        hi = max(have, key=lambda p: e["pairers"][p]["efficiency"])
        eff = (e["pairers"][lo]["efficiency"], e["pairers"][hi]["efficiency"])
        sig = (e["pairers"][lo]["signal_region_fb"], e["pairers"][hi]["signal_region_fb"])
        ref = C.REFERENCE_QCD_SELECTION_EFFICIENCY[analysis]
        ends[analysis] = eff
        lines.append(f"| {analysis} ({name}) | {', '.join(have)} | {eff[0]:.2e} ({lo}) / {eff[1]:.2e} ({hi}) | "
                     f"{ref[0]:.2e} / {ref[1]:.2e} | {eff[0] / ref[0]:.2f} / {eff[1] / ref[1]:.2f} | "
                     f"{sig[0] / ref[0]:.3g} / {sig[1] / ref[1]:.3g} | {eff[1] / eff[0]:.2f}, {ref[1] / ref[0]:.2f} |")
    if len(ends) == 2:
        r_emul = [ends["nonresonant"][i] / ends["resonant"][i] for i in (0, 1)]
        r_seed = [C.REFERENCE_QCD_SELECTION_EFFICIENCY["nonresonant"][i] / C.REFERENCE_QCD_SELECTION_EFFICIENCY["resonant"][i]
                  for i in (0, 1)]
        lines += ["", f"non-resonant / resonant efficiency (lowest, highest): emulation {r_emul[0]:.2f}, {r_emul[1]:.2f}; "
                  f"seeds {r_seed[0]:.2f}, {r_seed[1]:.2f} (equal denominators assumed for the seeds' two samples)"]
    return "\n".join(lines)


def kappa_comparison(job_path: Path, output: Path, work: Path, luminosity: float = 300.0) -> dict:
    """kappa_lambda intervals of the job's cut-based ``compare`` rows at ``luminosity``, with the
    job's likelihood ("job") and with the seeds' ("seeds": QCD backgrounds only, no nuisance
    parameters; the statistics layer always books a luminosity parameter, here of width 1e-6).
    Returns {variant: {row: {"cls": interval, "profile": interval, "reference": label}}}."""
    import copy

    import yaml

    from hhcoffea.stats.analysis import load_outputs, run_statistics

    hists, meta = load_outputs(output)
    base = dict(yaml.safe_load(job_path.read_text())["statistics"])
    base["luminosity"] = [luminosity]
    for key in ("resonant", "equivalent_luminosity"):
        base.pop(key, None)
    rows = {k: v for k, v in (base.get("compare") or {}).items() if isinstance(v, dict) and "regions" in v}
    base["compare"] = {"luminosity": [luminosity], **rows}
    seeds = copy.deepcopy(base)
    qcd = [b for b in seeds["nonresonant"]["backgrounds"] if meta["datasets"].get(b, {}).get("process") == "qcd"]
    seeds["nonresonant"]["backgrounds"] = qcd
    seeds["backgrounds"] = [b for b in seeds.get("backgrounds", []) if meta["datasets"].get(b, {}).get("process") == "qcd"]
    seeds["systematics"] = {"staterror": False, "lumi": 1e-6}
    out = {}
    for variant, st in (("job", base), ("seeds", seeds)):
        summary = run_statistics(copy.deepcopy(st), hists, meta, work / variant)
        out[variant] = {label: {"cls": row["luminosities"][f"{luminosity:g}"]["cls_expected"],
                                "profile": row["luminosities"][f"{luminosity:g}"]["profile"], "reference": row["reference"]}
                        for label, row in summary["comparison"].items()}
    # rows with their own `likelihood: poisson` are the seeds' likelihood in either variant
    for label, row in rows.items():
        if row.get("likelihood") == "poisson":
            out["job"].pop(label, None)
    return out


def kappa_table(result: dict) -> str:
    """Markdown: the intervals of both likelihoods next to table VI, with the width ratios."""
    def interval(d):
        lo = "open" if d.get("lower") is None else f"{d['lower']:.2f}"
        hi = "open" if d.get("upper") is None else f"{d['upper']:.2f}"
        return f"[{lo}, {hi}]", d.get("width")

    lines = ["| row | likelihood | CLs mu-POI | width / table VI | profile kappa-POI | width / table VI |",
             "|---|---|---|---:|---|---:|"]
    for variant, rows in result.items():
        for label, r in rows.items():
            cells = []
            for key, table_vi in (("cls", C.REFERENCE_KAPPA_INTERVALS_TABLE_VI), ("profile", C.REFERENCE_KAPPA_INTERVALS_TABLE_VI_KAPPA_POI)):
                text, width = interval(r[key])
                ref = table_vi[r["reference"]]
                ratio = "—" if width is None else f"{width / (ref[1] - ref[0]):.2f}"
                cells += [f"{text} (table VI [{ref[0]:.2f}, {ref[1]:.2f}])", ratio]
            name = "job (demo systematics, QCD + ttbar)" if variant == "job" else "seeds (QCD only, no nuisance parameters)"
            lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def background_main(args) -> int:
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    text = background_table(background_yields(Path(args.background)), window_yields(Path(args.background)))
    if args.job:
        text += "\n\nkappa_lambda at 300 fb-1, background-only Asimov data:\n\n" + kappa_table(
            kappa_comparison(Path(args.job), Path(args.background), out / "statistics"))
    print(text)
    (out / "background.md").write_text(text + "\n")
    print(f"# wrote {out / 'background.md'}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--showered", default="data/fidelity", help="folder of the showered samples (made when missing)")
    parser.add_argument("--n-shower", type=int, default=30_000, help="events per showered sample when one is made")
    parser.add_argument("--n-fast", type=int, default=300_000, help="events per fast sample")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fast-only", action="store_true", help="only the fast emulation (no showered samples)")
    parser.add_argument("--output", default="output/fidelity")
    parser.add_argument("--samples", nargs="*", default=list(SAMPLES))
    parser.add_argument("--background", help="a processor output folder (cutflow.json, metadata.json): background report only")
    parser.add_argument("--job", help="with --background: the job file whose statistics section the kappa_lambda rows use")
    args = parser.parse_args()
    if args.background:
        return background_main(args)
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name in args.samples:
        process, m_x, kappa, seed = SAMPLES[name]
        results[name] = {}
        start = time.perf_counter()
        arrays = generate_arrays(process, args.n_fast, seed=seed + 1000, m_x=m_x, kappa_lambda=kappa)
        rate = args.n_fast / (time.perf_counter() - start)
        results[name]["fast"] = measure(*_events_from_arrays(arrays))
        print(f"# {name}: fast emulation {rate:,.0f} events/s (in memory)")
        if not args.fast_only:
            path = _showered_file(Path(args.showered), name, args.n_shower, args.workers)
            results[name]["shower"] = measure(*_events_from_file(path))
        if name in SEEDS:
            results[name]["seeds"] = SEEDS[name]
    text = table(results) + "\n\nb-quark jets against the quark's pT (every event, before the four-tag cut):\n\n" + quark_table(results)
    print(text)
    (out / "fidelity.md").write_text(text + "\n")
    plot(results, out / "fidelity.png")
    print(f"# wrote {out / 'fidelity.md'} and {out / 'fidelity.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
