"""Writing a run's outputs: histograms (one pickle per histogram, a pickle of all, a ROOT file),
cutflows and pairing efficiencies (JSON and markdown), plots, provenance and the summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..histograms import JET_MULTIPLICITY_BINS, NOMINAL, load_histogram, load_histograms, save_histograms

__all__ = [
    "MULTIPLICITY_AXES", "cutflow_markdown", "cutflow_table", "load_histogram", "load_histograms",
    "pairing_efficiency", "pairing_markdown", "write_histograms", "write_outputs", "write_root",
]


# --- histograms ---------------------------------------------------------------------------------


def write_histograms(histograms: dict, outdir: Path) -> None:
    """``hists/<name>.pkl`` (one pickle per histogram, read one at a time with
    :func:`load_histogram`) and ``histograms.root`` (every non-empty slice, for ROOT users)."""
    save_histograms(histograms, outdir)
    write_root(histograms, outdir / "histograms.root")


def write_root(histograms: dict, path: Path) -> int:
    """Each non-empty slice ``name/dataset/region/pairer/systematic`` as a ROOT histogram."""
    import uproot

    written = 0
    with uproot.recreate(path) as f:
        for name, h in histograms.items():
            cat_names = [ax.name for ax in h.axes if ax.name in ("dataset", "region", "pairer", "systematic")]
            if len(cat_names) != 4:
                continue
            for key in _category_product(h, cat_names):
                view = h[dict(zip(cat_names, key))]
                if not np.any(view.values()):
                    continue
                f["/".join([name, *key])] = view
                written += 1
    return written


def _category_product(h, names):
    import itertools

    return itertools.product(*(list(h.axes[n]) for n in names))


# --- cutflow and pairing efficiency ----------------------------------------------------------------


def cutflow_table(cutflow: dict) -> dict:
    """``{dataset: {pairer: {analysis: [{cut, events, weighted, efficiency}]}}}`` in cut order
    (the order in which the processor wrote the steps)."""
    table = {}
    for dataset, by_pairer in sorted(cutflow.items()):
        for pairer, by_analysis in sorted(by_pairer.items()):
            for analysis, steps in by_analysis.items():
                rows, first = [], None
                for cut, (n, w) in steps.items():
                    n, w = float(n), float(w)
                    first = first if first is not None else (w or 1.0)
                    rows.append({"cut": cut, "events": int(n), "weighted": w, "efficiency": w / first if first else 0.0})
                table.setdefault(dataset, {}).setdefault(pairer, {})[analysis] = rows
    return table


def cutflow_markdown(table: dict) -> str:
    lines = ["# Cutflow", "", "Weighted yields are events at the job's luminosity.", ""]
    for dataset, by_pairer in table.items():
        for pairer, by_analysis in by_pairer.items():
            for analysis, rows in by_analysis.items():
                lines += [f"## {dataset} / {pairer} / {analysis}", "", "| cut | events | weighted | efficiency |", "|---|---:|---:|---:|"]
                lines += [f"| {r['cut']} | {r['events']} | {r['weighted']:.4g} | {r['efficiency']:.4f} |" for r in rows]
                lines.append("")
    return "\n".join(lines)


#: the two jet-multiplicity conventions of the pairing tables: jets the pairers see, and every
#: jet with pT >= 20 GeV (the seeds' tables, PHYSICS.md "Objects and preselection")
MULTIPLICITY_AXES = {"selected": "n_jets", "all_jets_20": "n_jets_all"}


def pairing_efficiency(h) -> dict:
    """From the ``pairing_truth`` counts: per dataset and pairer, by jet multiplicity (in both
    conventions of :data:`MULTIPLICITY_AXES`) and overall, the event efficiency (both Higgs
    correct) and Higgs efficiency (fraction of Higgs correct), over fully reconstructable events
    (every b quark matched to its own jet), plus that fraction.

    Returns ``{dataset: {pairer: {"all": {...}, "selected": {"4": {...}, ...}, "all_jets_20": {...}}}}``.
    """
    result = {}
    for dataset in h.axes["dataset"]:
        for pairer in h.axes["pairer"]:
            sub = h[{"dataset": dataset, "pairer": pairer}]
            entry = {"all": _efficiencies(sub.values().sum(axis=(0, 1)))}
            for convention, axis in MULTIPLICITY_AXES.items():
                other = [a for a in MULTIPLICITY_AXES.values() if a != axis][0]
                counts = sub[{other: sum}].values()  # (n_jets, truth, correct_higgs)
                entry[convention] = {label: _efficiencies(counts[i]) for i, label in enumerate(JET_MULTIPLICITY_BINS)}
            result.setdefault(dataset, {})[pairer] = entry
    return result


def _efficiencies(c: np.ndarray) -> dict:
    """``c``: counts ``(truth = full/partial, correct_higgs = 0..3)``."""
    full, total = c[0], c.sum()
    n_full = full.sum()
    return {
        "events": int(total),
        "reconstructable_fraction": float(n_full / total) if total else None,
        "event_efficiency": float(full[2] / n_full) if n_full else None,
        "higgs_efficiency": float((full[1] + 2 * full[2]) / (2 * n_full)) if n_full else None,
    }


def pairing_markdown(eff: dict) -> str:
    lines = ["# Pairing efficiency (truth-matched, fully reconstructable events)", "",
             "Jets: `selected` counts the jets the pairers see (pT > 40, |eta| < 2.5); `all_jets_20` counts",
             "every jet with pT >= 20 GeV, the convention of the seeds' tables.", "",
             "| dataset | pairer | jets | events | event eff. | Higgs eff. | reconstructable |", "|---|---|---|---:|---:|---:|---:|"]
    fmt = lambda x: "—" if x is None else f"{x:.3f}"  # noqa: E731

    def row(dataset, pairer, jets, e):
        return (f"| {dataset} | {pairer} | {jets} | {e['events']} | {fmt(e['event_efficiency'])} | "
                f"{fmt(e['higgs_efficiency'])} | {fmt(e['reconstructable_fraction'])} |")

    for dataset, by_pairer in eff.items():
        for pairer, entry in by_pairer.items():
            lines.append(row(dataset, pairer, "all", entry["all"]))
            for convention in MULTIPLICITY_AXES:
                for n, e in entry[convention].items():
                    lines.append(row(dataset, pairer, f"{n} ({convention})", e))
    return "\n".join(lines) + "\n"


def write_outputs(job, result, plots: bool = True) -> dict:
    """Write everything a run produces into the job's output folder, as a whole: a killed write
    leaves the previous output untouched (:func:`.atomic.atomic_folder`); returns the paths."""
    from .atomic import atomic_folder

    with atomic_folder(job.output, keep_inside=(job.path,)) as outdir:
        _write_outputs(job, result, outdir, plots)
    return {"output": str(job.output)}


def _write_outputs(job, result, outdir, plots: bool) -> None:
    out = result.output
    hists = out["histograms"]
    write_histograms(hists, outdir)
    table = cutflow_table(out["cutflow"])
    (outdir / "cutflow.json").write_text(json.dumps(table, indent=2))
    (outdir / "cutflow.md").write_text(cutflow_markdown(table))
    eff = pairing_efficiency(hists["pairing_truth"])
    (outdir / "pairing_efficiency.json").write_text(json.dumps(eff, indent=2))
    (outdir / "pairing_efficiency.md").write_text(pairing_markdown(eff))
    metadata = {
        "luminosity": float(job.config["luminosity"]),
        "datasets": {name: entry["metadata"] for name, entry in result.fileset.coffea.items()},
        "systematic_nominal": NOMINAL,
        # score-based selections: region -> pairer, scorer, threshold (statistics can name them)
        "selections": out.get("selections", {}),
    }
    if out.get("selections"):
        (outdir / "selections.json").write_text(json.dumps(out["selections"], indent=2))
    (outdir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    from .provenance import write_provenance

    write_provenance(job, result, outdir)
    if plots:
        from .plotting import plot_run

        plot_run(hists, outdir / "plots", metadata["datasets"], luminosity=metadata["luminosity"])
