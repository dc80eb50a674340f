"""PNG plots with mplhep: m_hh per region, pairer and b-tagging working point (backgrounds stacked
in muted fills, signals overlaid as lines) and the (m_h1, m_h2) plane of every signal dataset and
of the first background with the signal-region contour.

Every plot carries a simulation label with √s = 13 TeV and the luminosity the histograms are
weighted to. Variable-width axes are drawn per GeV (bin-width normalised), regular ones per bin
with the bin width on the y label.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402

from .. import constants as c  # noqa: E402
from ..histograms import NOMINAL  # noqa: E402

__all__ = [
    "BACKGROUND_COLOURS",
    "BACKGROUND_PROCESSES",
    "PLOTTED_REGIONS",
    "SIGNAL_COLOURS",
    "plot_m_hh",
    "plot_mass_plane",
    "plot_run",
]

BACKGROUND_PROCESSES = ("qcd", "ttbar")
PLOTTED_REGIONS = ("four_tag", "signal", "resonant_signal")
#: muted fills for stacked backgrounds and saturated lines for signals, so a signal line never
#: matches a background fill
BACKGROUND_COLOURS = ("#b8c7d9", "#e6d3a3", "#c5dcc0", "#dcc3d6", "#d9d9d9")
SIGNAL_COLOURS = ("#c0392b", "#1f4e9c", "#1e8449", "#8e44ad", "#d35400", "#117a8b", "#7b241c", "#000000")
CENTRE_OF_MASS_TEV = 13  # the samples are generated at 13 TeV (README "Samples")
_LABEL_EXPERIMENT = "hhcoffea"  # emulated samples: no experiment's name


def _experiment_label(ax, luminosity: float) -> None:
    """'hhcoffea Simulation' on the left, 'L fb^-1 (13 TeV)' on the right, above the axes."""
    mplhep.label.exp_label(exp=_LABEL_EXPERIMENT, data=False, lumi=f"{luminosity:g}",
                           com=CENTRE_OF_MASS_TEV, loc=0, ax=ax)


def _is_uniform(edges: np.ndarray) -> bool:
    widths = np.diff(edges)
    return bool(np.allclose(widths, widths[0], rtol=1e-6))


def _y_label(edges: np.ndarray, unit: str = "GeV") -> tuple[str, float | None]:
    """The y label and mplhep's ``binwnorm``: per bin (width stated) or, for variable bins, per GeV."""
    if _is_uniform(edges):
        return f"Events / {np.diff(edges)[0]:g} {unit}", None
    return f"Events / {unit}", 1.0


def plot_m_hh(h, members: list[str], background: list[str], luminosity: float = c.REFERENCE_LUMINOSITY,
              title: str = "", **selection) -> plt.Figure:
    """m_hh of ``members`` in one slice (``selection``: region, pairer, systematic).

    Datasets in ``background`` are stacked as filled histograms, the rest are drawn as lines.
    """
    sel = {"systematic": NOMINAL, **selection}
    edges = h.axes[-1].edges
    y_label, binwnorm = _y_label(edges)
    widths = np.diff(edges) if binwnorm else np.ones(len(edges) - 1)
    fig, ax = plt.subplots(figsize=(8, 6))
    bkg = [d for d in members if d in background]
    sig = [d for d in members if d not in background]
    positive = []
    if bkg:
        views = [h[{**sel, "dataset": d}] for d in bkg]
        colours = [BACKGROUND_COLOURS[i % len(BACKGROUND_COLOURS)] for i in range(len(bkg))]
        drawn = mplhep.histplot(views, label=bkg, stack=True, histtype="fill", color=colours,
                                edgecolor="#555555", linewidth=0.6, binwnorm=binwnorm, ax=ax)
        for d, artists in zip(bkg, drawn):
            artists.stairs.set_gid(d)  # find a dataset's artist by name (tests, SVG)
        positive.append(sum(v.values() for v in views) / widths)
    for i, d in enumerate(sig):
        view = h[{**sel, "dataset": d}]
        (drawn,) = mplhep.histplot(view, label=d, histtype="step", color=SIGNAL_COLOURS[i % len(SIGNAL_COLOURS)],
                                   linewidth=2.0, binwnorm=binwnorm, ax=ax)
        drawn.stairs.set_gid(d)
        positive.append(view.values() / widths)
    ax.set_yscale("log")
    values = np.concatenate(positive) if positive else np.zeros(1)
    values = values[values > 0]
    if len(values):  # room below the smallest bin and above the largest for the legend
        ax.set_ylim(values.min() / 5, values.max() * 300)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_xlabel(h.axes[-1].label)
    ax.set_ylabel(y_label)
    ax.legend(fontsize=9, ncol=2, title=title, title_fontsize=10, loc="upper right")
    _experiment_label(ax, luminosity)
    return fig


def plot_mass_plane(plane, dataset: str, luminosity: float = c.REFERENCE_LUMINOSITY, title: str = "",
                    **selection) -> plt.Figure:
    """The (m_h1, m_h2) plane of one dataset with the X_hh signal-region contour."""
    from ..columnar.selection import x_hh

    sel = {"systematic": NOMINAL, "region": "four_tag", **selection, "dataset": dataset}
    view = plane[sel]
    fig, ax = plt.subplots(figsize=(7.5, 6))
    filled = view.values()
    vmin = filled[filled > 0].min() if (filled > 0).any() else None  # empty bins stay blank
    artists = mplhep.hist2dplot(view, ax=ax, cmap="viridis", cmin=vmin)
    wx, wy = (np.diff(view.axes[i].edges)[0] for i in range(2))
    artists.cbar.set_label(f"Events / bin ({wx:g} × {wy:g} GeV²)")
    lo, hi = max(view.axes[0].edges[0], 40.0), view.axes[0].edges[-1]
    m1, m2 = np.meshgrid(np.linspace(lo, hi, 400), np.linspace(lo, hi, 400))
    ax.contour(m1, m2, x_hh(m1, m2), levels=[c.SIGNAL_REGION_X_HH_MAX], colors="#e74c3c", linewidths=2)
    ax.plot([], [], color="#e74c3c", lw=2, label=rf"$X_{{hh}} = {c.SIGNAL_REGION_X_HH_MAX:g}$")
    ax.legend(loc="upper right", fontsize=10, title=title or dataset, title_fontsize=10, frameon=True,
              framealpha=0.85, facecolor="white", edgecolor="none")  # readable over a full plane
    ax.set_xlabel(view.axes[0].label)
    ax.set_ylabel(view.axes[1].label)
    _experiment_label(ax, luminosity)
    return fig


def plot_run(hists: dict, outdir: Path, metadata: dict | None = None,
             luminosity: float = c.REFERENCE_LUMINOSITY) -> list[Path]:
    """Write every plot of a run into ``outdir`` and return the paths.

    ``metadata`` maps dataset -> its metadata (``process``, ``working_point``); ``luminosity`` in
    fb^-1 is the one the histograms are weighted to (the job's), shown on every plot.
    Files: ``m_hh_<region>_<pairer>_<working point>.png`` and ``mass_plane_<dataset>_<pairer>.png``.
    """
    outdir.mkdir(parents=True, exist_ok=True)
    for stale in outdir.glob("*.png"):  # a rerun must not leave plots of an older job behind
        stale.unlink()
    mplhep.style.use("ATLAS")
    metadata = metadata or {}
    written = []
    h = hists["m_hh"]
    datasets = list(h.axes["dataset"])
    # one plot per b-tagging working point: each analysis has its own samples and backgrounds
    groups: dict[str, list[str]] = {}
    for d in datasets:
        groups.setdefault(str(metadata.get(d, {}).get("working_point", "all")), []).append(d)
    background = [d for d in datasets if metadata.get(d, {}).get("process") in BACKGROUND_PROCESSES]
    signal = [d for d in datasets if d not in background]
    # planes: every signal, and the first background of each working point
    plane_datasets = signal + [next(d for d in members if d in background)
                               for members in groups.values() if any(d in background for d in members)]

    def save(fig, path):
        fig.savefig(path, dpi=80, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    for pairer in h.axes["pairer"]:
        for wp, members in groups.items():
            for region in PLOTTED_REGIONS:
                fig = plot_m_hh(h, members, background, luminosity,
                                title=f"{region}, {pairer} pairing, {wp}", region=region, pairer=pairer)
                save(fig, outdir / f"m_hh_{region}_{pairer}_{wp}.png")
        for d in plane_datasets:
            fig = plot_mass_plane(hists["m_h1_m_h2"], d, luminosity, title=f"{d}, four-tag, {pairer} pairing",
                                  pairer=pairer)
            save(fig, outdir / f"mass_plane_{d}_{pairer}.png")
    return written
