"""PNG plots with mplhep: m_hh per region and pairer (backgrounds stacked, signals overlaid) and
the (m_h1, m_h2) plane with the signal-region contour.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402

from . import constants as c  # noqa: E402
from .histograms import NOMINAL  # noqa: E402

BACKGROUND_PROCESSES = ("qcd", "ttbar")
PLOTTED_REGIONS = ("four_tag", "signal", "resonant_signal")


def plot_run(hists: dict, outdir: Path, metadata: dict | None = None) -> list[Path]:
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
    for pairer in h.axes["pairer"]:
        for wp, members in groups.items():
            for region in PLOTTED_REGIONS:
                fig, ax = plt.subplots(figsize=(8, 6))
                sel = {"region": region, "pairer": pairer, "systematic": NOMINAL}
                bkg = [d for d in members if d in background]
                if bkg:
                    mplhep.histplot([h[{**sel, "dataset": d}] for d in bkg], label=bkg,
                                    stack=True, histtype="fill", ax=ax)
                for d in (d for d in members if d in signal):
                    mplhep.histplot(h[{**sel, "dataset": d}], label=d, histtype="step", ax=ax)
                ax.set_yscale("log")
                ax.set_ylim(bottom=1e-2)
                ax.set_ylabel("Events")
                ax.set_title(f"{region}, pairing: {pairer}, b-tagging: {wp}", fontsize=12)
                ax.legend(fontsize=9, ncol=2)
                path = outdir / f"m_hh_{region}_{pairer}_{wp}.png"
                fig.savefig(path, dpi=80, bbox_inches="tight")
                plt.close(fig)
                written.append(path)
        plane = hists["m_h1_m_h2"]
        for d in signal[:1] + background[:1]:
            fig, ax = plt.subplots(figsize=(7, 6))
            view = plane[{"dataset": d, "region": "four_tag", "pairer": pairer, "systematic": NOMINAL}]
            mplhep.hist2dplot(view, ax=ax)
            m1, m2 = np.meshgrid(np.linspace(60, 200, 300), np.linspace(60, 200, 300))
            from .selection import x_hh

            ax.contour(m1, m2, x_hh(m1, m2), levels=[c.SIGNAL_REGION_X_HH_MAX], colors="red")
            ax.set_title(f"{d}, four-tag, pairing: {pairer}", fontsize=12)
            path = outdir / f"mass_plane_{d}_{pairer}.png"
            fig.savefig(path, dpi=80, bbox_inches="tight")
            plt.close(fig)
            written.append(path)
    return written
