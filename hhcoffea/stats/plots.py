"""Plots of the statistical results (matplotlib Agg backend, mplhep ATLAS style)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import mplhep  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["brazil_band", "kappa_scans"]


def _label(ax, luminosity: float | None, text: str | None = None) -> None:
    lumi = f"{luminosity:g} fb$^{{-1}}$, 14 TeV" if luminosity is not None else ""
    ax.text(0.04, 0.96, "\n".join(t for t in ("hhcoffea", lumi, text) if t), transform=ax.transAxes, va="top")


def brazil_band(
    x: Sequence[float],
    expected: np.ndarray,
    observed: Sequence[float] | None,
    path: pathlib.Path,
    *,
    xlabel: str = r"$m_X$ [GeV]",
    ylabel: str = r"95% CL upper limit on $\sigma \times B(hh\to 4b)$ [fb]",
    luminosity: float | None = None,
    observed_label: str = "Observed",
    logy: bool = True,
    text: str | None = None,
) -> pathlib.Path:
    """Expected median with +-1 sigma (green) and +-2 sigma (yellow) bands and the observed line.

    Args:
        expected: shape ``(n, 5)``: -2, -1, 0, +1, +2 sigma limits per point.
    """
    x = np.asarray(x, dtype=float)
    e = np.asarray(expected, dtype=float)
    with plt.style.context(mplhep.style.ATLAS):
        fig, ax = plt.subplots(figsize=(8, 6))
        ax.fill_between(x, e[:, 0], e[:, 4], color="#ffcc00", label=r"Expected $\pm 2\sigma$", lw=0)
        ax.fill_between(x, e[:, 1], e[:, 3], color="#00cc00", label=r"Expected $\pm 1\sigma$", lw=0)
        ax.plot(x, e[:, 2], "k--", label="Expected")
        if observed is not None:
            ax.plot(x, np.asarray(observed, dtype=float), "k-o", ms=4, label=observed_label)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if logy:
            ax.set_yscale("log")
        ax.legend(loc="upper right")
        _label(ax, luminosity, text)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return pathlib.Path(path)


def kappa_scans(cls_scan: dict, profile_scan: dict, path: pathlib.Path, *, luminosity: float | None = None) -> pathlib.Path:
    """Two panels: (a) mu limit vs kappa_lambda with the mu = 1 line, (b) -2 Delta ln L vs kappa_lambda.

    Each panel names its data (the scans' ``data`` entries, when present).
    """
    with plt.style.context(mplhep.style.ATLAS):
        fig, (a, b) = plt.subplots(1, 2, figsize=(14, 6))
        k = np.asarray(cls_scan["kappa_lambda"])
        e = np.asarray(cls_scan["mu_limit"]["expected"])
        a.fill_between(k, e[:, 0], e[:, 4], color="#ffcc00", lw=0, label=r"Expected $\pm 2\sigma$")
        a.fill_between(k, e[:, 1], e[:, 3], color="#00cc00", lw=0, label=r"Expected $\pm 1\sigma$")
        a.plot(k, e[:, 2], "k--", label="Expected")
        a.plot(k, cls_scan["mu_limit"]["observed"], "k-", label="Limit on data")
        a.axhline(1.0, color="r", lw=1.5, label=r"$\sigma(\kappa_\lambda)$ prediction")
        a.set_yscale("log")
        a.set_xlabel(r"$\kappa_\lambda$")
        a.set_ylabel(r"95% CL upper limit on $\mu$")
        a.legend(loc="upper right")
        _label(a, luminosity, "CLs, $\\mu$ as POI\ndata: " + cls_scan.get("data", "?"))
        kp = np.asarray(profile_scan["kappa_lambda"])
        b.plot(kp, profile_scan["minus_two_delta_nll"], "b-")
        b.axhline(profile_scan["threshold"], color="r", ls="--", label=r"$1.96^2$")
        iv = profile_scan["interval"]
        for edge in (iv["lower"], iv["upper"]):
            if edge is not None:
                b.axvline(edge, color="gray", ls=":")
        b.set_ylim(0, max(3 * profile_scan["threshold"], 1.0))
        b.set_xlabel(r"$\kappa_\lambda$")
        b.set_ylabel(r"$-2\Delta\ln L$")
        b.legend(loc="upper right")
        _label(b, luminosity, "profile likelihood, $\\kappa_\\lambda$ as POI\ndata: " + profile_scan.get("data", "?"))
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
    return pathlib.Path(path)
