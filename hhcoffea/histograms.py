"""Histogram definitions: every histogram carries dataset, region, pairer and systematic axes.

Systematic variations are opt-in per histogram (job file ``histograms: {name: {systematics:
[...]}}``) so outputs stay small; every histogram has the ``nominal`` entry.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import hist
import numpy as np

__all__ = [
    "JET_MULTIPLICITY_BINS", "MASS_PLANE_BINS", "NOMINAL", "OBSERVABLES", "Observable", "REGIONS",
    "HISTOGRAM_FOLDER", "FillRecorder", "book", "category_axes", "coded_axes", "fill_fields", "load_histogram",
    "load_histograms", "save_histograms",
]

#: regions filled by the HH processor, in cutflow order. The ``resonant_*`` regions add the
#: resonant pT cuts (PHYSICS.md "Cut-based selection").
REGIONS = (
    "four_tag",
    "preselection",
    "signal",
    "control",
    "resonant_preselection",
    "resonant_signal",
    "resonant_control",
)


NOMINAL = "nominal"
JET_MULTIPLICITY_BINS = ("4", "5", "6+")


@dataclass(frozen=True)
class Observable:
    name: str
    label: str
    bins: tuple  # (n, lo, hi) or a list of edges


#: 1-D observables of the Higgs candidates; ``bins`` may be overridden in the job file
OBSERVABLES: dict[str, Observable] = {
    o.name: o
    for o in (
        Observable("m_hh", r"$m_{hh}$ [GeV]", (60, 200.0, 1400.0)),
        Observable("pt_hh", r"$p_T^{hh}$ [GeV]", (50, 0.0, 500.0)),
        Observable("h1_pt", r"$p_T^{h_1}$ [GeV]", (50, 0.0, 800.0)),
        Observable("h2_pt", r"$p_T^{h_2}$ [GeV]", (50, 0.0, 600.0)),
        Observable("h1_eta", r"$\eta^{h_1}$", (50, -5.0, 5.0)),
        Observable("h2_eta", r"$\eta^{h_2}$", (50, -5.0, 5.0)),
        Observable("h1_mass", r"$m_{h_1}$ [GeV]", (50, 0.0, 250.0)),
        Observable("h2_mass", r"$m_{h_2}$ [GeV]", (50, 0.0, 250.0)),
        Observable("delta_eta_hh", r"$|\Delta\eta_{hh}|$", (50, 0.0, 5.0)),
        Observable("x_hh", r"$X_{hh}$", (50, 0.0, 10.0)),
        Observable("x_wt", r"min $X_{Wt}$", (50, 0.0, 10.0)),
    )
}
MASS_PLANE_BINS = (50, 0.0, 250.0)


def _axis(name: str, label: str, bins) -> hist.axis.AxesMixin:
    bins = list(bins)
    if len(bins) == 3 and isinstance(bins[0], int):
        return hist.axis.Regular(int(bins[0]), float(bins[1]), float(bins[2]), name=name, label=label)
    return hist.axis.Variable([float(b) for b in bins], name=name, label=label)


def category_axes(datasets=(), pairers=(), systematics=(NOMINAL,), regions=REGIONS):
    """The category axes; growing, and seeded with the categories a chunk fills, so that a
    chunk (or a whole dataset) where nothing passes still has its bins. ``regions``: the
    processor's, plus the job's score-based selections (hhcoffea.scoring.selections)."""
    return (
        hist.axis.StrCategory(list(datasets), name="dataset", label="Dataset", growth=True),
        hist.axis.StrCategory(list(regions), name="region", label="Region"),
        hist.axis.StrCategory(list(pairers), name="pairer", label="Pairer", growth=True),
        hist.axis.StrCategory(list(systematics), name="systematic", label="Systematic", growth=True),
    )


def book(binning: dict | None = None, datasets=(), pairers=(), systematics: dict | None = None,
         regions=REGIONS) -> dict[str, hist.Hist]:
    """Empty histograms: every observable, the (m_h1, m_h2) plane and the truth-pairing counts.

    ``systematics``: histogram name -> variation names it is filled for (besides nominal);
    ``regions``: the region axis' categories.
    """
    binning = binning or {}
    systematics = systematics or {}

    def axes(name):
        return category_axes(datasets, pairers, (NOMINAL, *systematics.get(name, ())), regions)

    out = {}
    for name, obs in OBSERVABLES.items():
        bins = binning.get(name, obs.bins)
        out[name] = hist.Hist(*axes(name), _axis(name, obs.label, bins), storage=hist.storage.Weight())
    out["m_h1_m_h2"] = hist.Hist(
        *axes("m_h1_m_h2"),
        _axis("m_h1", r"$m_{h_1}$ [GeV]", MASS_PLANE_BINS),
        _axis("m_h2", r"$m_{h_2}$ [GeV]", MASS_PLANE_BINS),
        storage=hist.storage.Weight(),
    )
    out["pairing_truth"] = hist.Hist(
        hist.axis.StrCategory(list(datasets), name="dataset", growth=True),
        hist.axis.StrCategory(list(pairers), name="pairer", growth=True),
        hist.axis.StrCategory(list(JET_MULTIPLICITY_BINS), name="n_jets", label="Selected jets"),
        # the seeds' convention: every jet with pT >= 20 GeV (PHYSICS.md "Objects and preselection")
        hist.axis.StrCategory(list(JET_MULTIPLICITY_BINS), name="n_jets_all", label="Jets with pT >= 20 GeV"),
        hist.axis.StrCategory(["full", "partial"], name="truth", label="All quarks matched"),
        hist.axis.Integer(0, 4, name="correct_higgs", label="Correctly paired Higgs"),
        storage=hist.storage.Double(),
    )
    return out


# --- fills as columns (the dask-awkward executor) ---------------------------------------------
def _is_category(axis) -> bool:
    return isinstance(axis, (hist.axis.StrCategory, hist.axis.IntCategory))


def _weighted(h) -> bool:
    return h.storage_type is hist.storage.Weight  # Double: counts (a fill without weights)


def fill_fields(h) -> list[str]:
    """The columns a fill of ``h`` gives, in axis order (``weight`` last when it has one)."""
    return list(h.axes.name) + (["weight"] if _weighted(h) else [])


def coded_axes(h) -> list:
    """``h``'s axes with every category axis replaced by integer codes 0..n-1 (same traits, so
    the views have the same shape): categories travel through dask-awkward as small integers,
    not as per-row strings."""
    return [hist.axis.IntCategory(list(range(len(a))), name=a.name, label=a.label, growth=a.traits.growth,
                                  overflow=a.traits.overflow) if _is_category(a) else a for a in h.axes]


class FillRecorder:
    """Stands in for the booked histograms during a chunk: ``recorder[name].fill(**axes, weight=)``
    keeps the call instead of filling, so a processor fills the same way whether the histograms
    are filled at once (eager) or later from columns (:meth:`columns`, for hist.dask)."""

    def __init__(self):
        self.calls: dict[str, list[dict]] = {}

    def __getitem__(self, name: str):
        return _RecordedFills(self.calls.setdefault(name, []))

    def replay(self, histograms: dict) -> dict:
        """Fill ``histograms`` with every recorded call, in order (the eager result)."""
        for name, calls in self.calls.items():
            for kwargs in calls:
                histograms[name].fill(**kwargs)
        return histograms

    def columns(self, name: str, h) -> dict[str, np.ndarray]:
        """The recorded fills of ``name`` as flat columns (:func:`fill_fields` of ``h``, the booked
        histogram): category values as their index on ``h``'s axis (int32), scalars repeated,
        rows in call order."""
        axes = {a.name: a for a in h.axes}
        fields = fill_fields(h)
        out = {f: [] for f in fields}
        for kwargs in self.calls.get(name, ()):
            unknown = set(kwargs) - set(fields)
            if unknown:
                raise ValueError(f"histogram {name!r}: fill with unknown column(s) {sorted(unknown)}; it has {fields}")
            n = next((len(v) for v in kwargs.values() if np.ndim(v) == 1), 1)
            for f in fields:
                value = kwargs.get(f, 1.0) if f == "weight" else kwargs[f]
                if f in axes and _is_category(axes[f]):
                    value = _category_codes(name, axes[f], value)
                out[f].append(np.broadcast_to(value, (n,)))
        dtypes = {f: np.int32 if f in axes and _is_category(axes[f]) else
                  np.int64 if f in axes and isinstance(axes[f], hist.axis.Integer) else np.float64 for f in fields}
        return {f: np.concatenate(v).astype(dtypes[f], copy=False) if v else np.zeros(0, dtypes[f])
                for f, v in out.items()}


class _RecordedFills:
    __slots__ = ("_calls",)

    def __init__(self, calls: list):
        self._calls = calls

    def fill(self, **kwargs):
        self._calls.append(kwargs)


def _category_codes(name: str, axis, value) -> np.ndarray:
    """Positions of ``value`` (a category or an array of them) on ``axis``; one lookup per
    distinct value, not per row."""
    index = {c: i for i, c in enumerate(axis)}
    if np.ndim(value) == 0:
        key = value.item() if isinstance(value, np.generic) else value
        if key not in index:
            raise ValueError(f"histogram {name!r}: {axis.name} {key!r} was not booked; booked: {list(axis)}")
        return np.int32(index[key])
    distinct, inverse = np.unique(np.asarray(value), return_inverse=True)
    missing = [d for d in distinct.tolist() if d not in index]
    if missing:
        raise ValueError(f"histogram {name!r}: {axis.name} {missing} not booked; booked: {list(axis)}")
    return np.array([index[d] for d in distinct.tolist()], dtype=np.int32)[inverse.reshape(-1)]


# --- on disk: one pickle per histogram (read one at a time) -----------------------------------
HISTOGRAM_FOLDER = "hists"


def save_histograms(histograms: dict, outdir: str | Path) -> Path:
    """``<outdir>/hists/<name>.pkl`` for every histogram; returns the folder."""
    folder = Path(outdir) / HISTOGRAM_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.pkl"):  # a rerun with fewer histograms leaves none of the old ones
        if stale.stem not in histograms:
            stale.unlink()
    for name, h in histograms.items():
        (folder / f"{name}.pkl").write_bytes(pickle.dumps(h, protocol=pickle.HIGHEST_PROTOCOL))
    return folder


def load_histogram(outdir: str | Path, name: str):
    """One histogram of a run's output folder, without loading the others."""
    folder = Path(outdir) / HISTOGRAM_FOLDER
    path = folder / f"{name}.pkl"
    if not path.exists():
        available = sorted(p.stem for p in folder.glob("*.pkl"))
        raise FileNotFoundError(f"{path}: no histogram {name!r} in this output; available: {available}")
    return pickle.loads(path.read_bytes())


def load_histograms(outdir: str | Path, names=None) -> dict:
    """``{name: hist.Hist}`` of a run's output folder (all, or only ``names``)."""
    folder = Path(outdir) / HISTOGRAM_FOLDER
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no histograms here (run the job first)")
    names = sorted(p.stem for p in folder.glob("*.pkl")) if names is None else list(names)
    return {name: load_histogram(outdir, name) for name in names}
