"""From the processor's hist histograms to HistFactory JSON: workspaces and signal patchsets.

The input is the processor's histogram layout: a ``hist.Hist`` with axes ``dataset``,
``region``, ``pairer``, ``systematic`` (``"nominal"``, ``"<name>_up"``, ``"<name>_down"``) and the
observable (``m_hh``), with ``Weight`` storage. :func:`extract_template` cuts one dataset out of it
as a :class:`Template` (yields, sum of squared weights, up/down variations).

Workspaces follow the published-likelihood convention (ATLAS/HEPData): one background-only
workspace -- one channel per region, the background samples, observations and a measurement whose
POI is the signal strength ``mu`` -- plus a :mod:`pyhf` patchset that adds the signal sample for
one grid point (one m_X or one kappa_lambda) per patch. Every sample carries

* ``lumi`` (Gaussian, width from the job file),
* ``staterror`` (MC statistics, from the sum of squared weights; one gamma per bin shared by the
  samples of a channel, as HistFactory does),
* ``normsys`` (``{name, hi, lo}``) and ``histosys`` (from the ``<name>_up``/``<name>_down``
  histograms) as configured per sample,

and the signal sample also the ``normfactor`` ``mu``. ``pyhf patchset apply`` on the written
files gives workspaces that build and fit. The background-only workspace has no ``mu`` modifier,
so its own model needs ``pyhf.Workspace(spec).model(poi_name=None)``.

A bin with no expected background makes the likelihood undefined; with ``merge_empty_bins``
(:func:`empty_bin_merge`, :class:`BinMerge`) such bins are summed into their neighbours, the same
way for every sample, variation and the data of a channel, before any workspace is built.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyhf

__all__ = [
    "MissingInputError",
    "Template",
    "NormSys",
    "SampleSystematics",
    "extract_template",
    "observable_edges",
    "sample_spec",
    "build_workspace",
    "signal_patch",
    "build_patchset",
    "patch_name",
    "apply_patch",
    "POI_NAME",
    "HEPDATA_PLACEHOLDER",
    "Sample",
    "Channels",
    "poi_upper_bound",
    "BinMerge",
    "empty_bin_merge",
]

POI_NAME = "mu"
LUMI_PARAMETER = "lumi"
#: the pyhf 1.0.0 patchset schema requires a HEPData reference; these likelihoods have none yet
HEPDATA_PLACEHOLDER = "ins0000000"
_AXES = ("dataset", "region", "pairer", "systematic")


class MissingInputError(LookupError):
    """A dataset, region, pairer, systematic variation or histogram the job asks for is absent."""

    def __str__(self) -> str:  # LookupError quotes its message; keep it one readable line
        return str(self.args[0])


@dataclass
class Template:
    """One sample's binned observable: yields, sum of squared weights and systematic variations."""

    yields: np.ndarray
    sumw2: np.ndarray
    variations: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)  # name -> (up, down)

    def scaled(self, factor: float) -> Template:
        """The template for ``factor`` times the luminosity / cross section."""
        return Template(
            self.yields * factor,
            self.sumw2 * factor**2,
            {k: (u * factor, d * factor) for k, (u, d) in self.variations.items()},
        )


@dataclass(frozen=True)
class NormSys:
    """A normalisation uncertainty: yields times ``hi`` (+1 sigma) or ``lo`` (-1 sigma)."""

    name: str
    hi: float
    lo: float


@dataclass
class SampleSystematics:
    """Which uncertainties a sample carries."""

    lumi: bool = True
    staterror: bool = True
    normsys: list[NormSys] = field(default_factory=list)
    histosys: list[str] = field(default_factory=list)


def _category(h, axis: str) -> list[str]:
    return [str(c) for c in h.axes[axis]]


def _check_layout(h, name: str) -> None:
    names = [ax.name for ax in h.axes]
    missing = [a for a in _AXES if a not in names]
    if missing:
        raise MissingInputError(f"histogram {name!r} has no axis {missing[0]!r} (axes: {names})")


def observable_edges(histograms: Mapping, observable: str = "m_hh") -> np.ndarray:
    """Bin edges of the observable axis (the last axis of ``histograms[observable]``)."""
    if observable not in histograms:
        raise MissingInputError(f"histogram {observable!r} not in the histograms file (have {sorted(histograms)})")
    return np.asarray(histograms[observable].axes[-1].edges, dtype=float)


def extract_template(
    histograms: Mapping,
    dataset: str,
    *,
    region: str,
    pairer: str,
    observable: str = "m_hh",
    variations: Iterable[str] = (),
) -> Template:
    """Cut one dataset's observable histogram out of the processor output.

    Args:
        histograms: ``{name: hist.Hist}`` as pickled by the processor.
        dataset, region, pairer: category values to select.
        observable: histogram name (its last axis is the observable).
        variations: systematic names whose ``<name>_up`` / ``<name>_down`` entries are read.

    Raises:
        MissingInputError: one line naming the missing histogram, dataset, region, pairer or
        systematic variation.
    """
    if observable not in histograms:
        raise MissingInputError(f"histogram {observable!r} not in the histograms file (have {sorted(histograms)})")
    h = histograms[observable]
    _check_layout(h, observable)
    for axis, value in (("dataset", dataset), ("region", region), ("pairer", pairer)):
        have = _category(h, axis)
        if value not in have:
            raise MissingInputError(f"{axis} {value!r} not in histogram {observable!r} (have {have})")
    systs = _category(h, "systematic")
    if "nominal" not in systs:
        raise MissingInputError(f"systematic 'nominal' not in histogram {observable!r} (have {systs})")

    def cut(syst: str):
        return h[{"dataset": dataset, "region": region, "pairer": pairer, "systematic": syst}]

    nom = cut("nominal")
    yields = np.asarray(nom.values(), dtype=float)
    var = nom.variances()
    sumw2 = np.asarray(var if var is not None else yields, dtype=float)
    out = Template(yields, sumw2)
    for name in variations:
        pair = []
        for side in ("up", "down"):
            key = f"{name}_{side}"
            if key not in systs:
                raise MissingInputError(
                    f"systematic variation {key!r} not in histogram {observable!r} (have {systs})"
                )
            pair.append(np.asarray(cut(key).values(), dtype=float))
        out.variations[name] = (pair[0], pair[1])
    return out


@dataclass(frozen=True)
class BinMerge:
    """Adjacent observable bins summed into one: ``groups`` are ``(first, stop)`` bin-index ranges
    that cover every bin in order (one-bin groups are bins left as they are); ``empty`` the bins
    whose background was <= 0 (the reason for each merge)."""

    groups: tuple[tuple[int, int], ...]
    empty: tuple[int, ...] = ()  # the bins (indices) whose background was <= 0

    @classmethod
    def identity(cls, nbins: int) -> BinMerge:
        return cls(tuple((i, i + 1) for i in range(nbins)))

    @property
    def is_identity(self) -> bool:
        return all(stop - first == 1 for first, stop in self.groups)

    def values(self, values) -> np.ndarray:
        """Per-bin values (yields, sum of squared weights, data) summed over each group."""
        values = np.asarray(values, dtype=float)
        return np.add.reduceat(values, [first for first, _ in self.groups])

    def template(self, template: Template) -> Template:
        """The template with every group summed: yields, sumw2 and each up/down variation."""
        return Template(
            self.values(template.yields),
            self.values(template.sumw2),
            {k: (self.values(u), self.values(d)) for k, (u, d) in template.variations.items()},
        )

    def sample(self, sample: Sample) -> Sample:
        return Sample(sample.name, self.template(sample.template), sample.systematics)

    def edges(self, edges) -> np.ndarray:
        """Bin edges after the merge."""
        edges = np.asarray(edges, dtype=float)
        return np.array([edges[first] for first, _ in self.groups] + [edges[-1]])

    def merged(self, edges) -> list[dict]:
        """The merged groups in observable units: ``[{"bins": [[lo, hi], ...], "into": [lo, hi]}]``,
        ``bins`` the empty-background bins of the group, ``into`` the merged bin."""
        edges = np.asarray(edges, dtype=float)
        return [
            {"bins": [[float(edges[i]), float(edges[i + 1])] for i in range(first, stop) if i in self.empty],
             "into": [float(edges[first]), float(edges[stop])]}
            for first, stop in self.groups if stop - first > 1
        ]  # fmt: skip

    def describe(self, channel: str, edges) -> str:
        """``channel c: bins [250, 300], [300, 350] merged into [250, 400]`` (groups joined by "; ")."""
        parts = [
            "bins " + ", ".join(f"[{lo:g}, {hi:g}]" for lo, hi in g["bins"]) + f" merged into [{g['into'][0]:g}, {g['into'][1]:g}]"
            for g in self.merged(edges)
        ]
        return f"channel {channel}: " + "; ".join(parts)


def empty_bin_merge(background, channel: str) -> BinMerge:
    """Merge each bin whose total expected ``background`` is <= 0 into a neighbour until every bin
    has a positive background.

    The leftmost non-positive group is joined with the neighbour holding more background (the
    higher-observable one on a tie), repeated until none is left; an already positive channel gives
    the identity. Raises ``ValueError`` (naming ``channel``) when no bin has positive background.
    """
    b = np.asarray(background, dtype=float)
    if not np.any(b > 0):
        raise ValueError(f"channel {channel!r}: no bin has a positive expected background, no bins to merge into")
    groups = [[i, i + 1] for i in range(b.size)]
    sums = [float(x) for x in b]
    while True:
        bad = [i for i, s in enumerate(sums) if not s > 0]
        if not bad:
            return BinMerge(tuple((first, stop) for first, stop in groups), tuple(int(k) for k in np.flatnonzero(~(b > 0))))
        if len(groups) == 1:  # negative weights (or NaN) outweigh every positive bin
            raise ValueError(f"channel {channel!r}: total expected background {sums[0]:g} is not positive, no bins to merge into")
        i = bad[0]
        left = sums[i - 1] if i > 0 else -math.inf
        right = sums[i + 1] if i + 1 < len(sums) else -math.inf
        j = i + 1 if right >= left else i - 1
        lo, hi = min(i, j), max(i, j)
        groups[lo:hi + 1] = [[groups[lo][0], groups[hi][1]]]
        sums[lo:hi + 1] = [sums[lo] + sums[hi]]


def _floats(a) -> list[float]:
    return [float(x) for x in np.asarray(a, dtype=float)]


def sample_spec(name: str, template: Template, systematics: SampleSystematics, *, poi: bool = False) -> dict:
    """HistFactory sample dict for ``template`` with the requested modifiers."""
    yields = np.asarray(template.yields, dtype=float)
    mods: list[dict] = []
    if poi:
        mods.append({"name": POI_NAME, "type": "normfactor", "data": None})
    if systematics.lumi:
        mods.append({"name": LUMI_PARAMETER, "type": "lumi", "data": None})
    if systematics.staterror:
        mods.append({"name": "staterror", "type": "staterror", "data": _floats(np.sqrt(np.maximum(template.sumw2, 0.0)))})
    for ns in systematics.normsys:
        mods.append({"name": ns.name, "type": "normsys", "data": {"hi": float(ns.hi), "lo": float(ns.lo)}})
    for hs in systematics.histosys:
        if hs not in template.variations:
            raise MissingInputError(f"systematic variation {hs!r} not read for sample {name!r}")
        up, down = template.variations[hs]
        mods.append({"name": hs, "type": "histosys", "data": {"hi_data": _floats(up), "lo_data": _floats(down)}})
    return {"name": name, "data": _floats(yields), "modifiers": mods}


def build_workspace(
    channels: Mapping[str, Sequence[dict]],
    observations: Mapping[str, Sequence[float]],
    *,
    lumi_uncertainty: float,
    measurement: str = "hh4b",
    poi_bounds: tuple[float, float] | None = None,
    validate: bool = True,
) -> dict:
    """A workspace spec from ``{channel: [sample dicts]}`` and ``{channel: observed counts}``.

    The measurement's POI is ``mu``; it has a parameter entry (bounds) only if ``poi_bounds`` is
    given, so a background-only workspace (no ``mu`` modifier) stays valid and each signal patch
    adds the bounds suited to its signal.
    """
    params = [
        {
            "name": LUMI_PARAMETER,
            "auxdata": [1.0],
            "sigmas": [float(lumi_uncertainty)],
            "bounds": [[max(1e-3, 1.0 - 5.0 * lumi_uncertainty), 1.0 + 5.0 * lumi_uncertainty]],
            "inits": [1.0],
        }
    ]
    if poi_bounds is not None:
        params.append({"name": POI_NAME, "bounds": [[float(poi_bounds[0]), float(poi_bounds[1])]]})
    spec = {
        "channels": [{"name": ch, "samples": list(samples)} for ch, samples in channels.items()],
        "observations": [{"name": ch, "data": _floats(observations[ch])} for ch in channels],
        "measurements": [{"name": measurement, "config": {"poi": POI_NAME, "parameters": params}}],
        "version": "1.0.0",
    }
    if validate:
        pyhf.Workspace(spec)  # validates against the schema
    return spec


def signal_patch(
    workspace: Mapping,
    signal_samples: Mapping[str, dict],
    *,
    poi_bounds: tuple[float, float],
) -> list[dict]:
    """JSON-patch operations adding a signal sample to each channel and the POI bounds.

    Args:
        workspace: the background-only spec (channel order and measurement count are read).
        signal_samples: ``{channel: sample dict}`` (the sample must carry the ``mu`` normfactor).
    """
    names = [ch["name"] for ch in workspace["channels"]]
    ops = []
    for ch, sample in signal_samples.items():
        ops.append({"op": "add", "path": f"/channels/{names.index(ch)}/samples/-", "value": copy.deepcopy(sample)})
    for i, _ in enumerate(workspace["measurements"]):
        ops.append(
            {
                "op": "add",
                "path": f"/measurements/{i}/config/parameters/-",
                "value": {"name": POI_NAME, "bounds": [[float(poi_bounds[0]), float(poi_bounds[1])]]},
            }
        )
    return ops


def patch_name(prefix: str, value: float) -> str:
    """Patch names allowed by the schema (``[a-zA-Z0-9_]``): ``kl_m1p5`` for -1.5, ``mX_500``."""
    text = f"{value:g}".replace("-", "m").replace(".", "p").replace("+", "")
    return f"{prefix}_{text}"


def build_patchset(
    workspace: Mapping,
    patches: Sequence[tuple[str, Sequence[float], list[dict]]],
    *,
    label: str,
    description: str,
) -> dict:
    """A pyhf patchset (schema 1.0.0) for ``workspace``: ``patches`` is ``[(name, values, ops)]``."""
    ps = {
        "metadata": {
            "name": description,
            "description": description,
            "digests": {"sha256": pyhf.utils.digest(workspace, algorithm="sha256")},
            "labels": [label],
            "references": {"hepdata": HEPDATA_PLACEHOLDER},
        },
        "patches": [
            {"metadata": {"name": name, "values": [float(v) for v in values]}, "patch": ops}
            for name, values, ops in patches
        ],
        "version": "1.0.0",
    }
    pyhf.PatchSet(ps)  # validates
    return ps


def apply_patch(workspace: Mapping, patchset: Mapping, name: str) -> dict:
    """The full workspace spec of one patch (what ``pyhf patchset apply`` writes)."""
    return dict(pyhf.PatchSet(copy.deepcopy(dict(patchset))).apply(pyhf.Workspace(copy.deepcopy(dict(workspace))), name))


def poi_upper_bound(signal: np.ndarray, background: np.ndarray, margin: float = 50.0) -> float:
    """A POI upper bound comfortably above the expected 95% CL limit (Asimov, stat-only estimate)."""
    s = np.asarray(signal, dtype=float)
    b = np.maximum(np.asarray(background, dtype=float), 1e-3)
    info = float(np.sum(s**2 / b))
    if info <= 0:
        return 1e6
    guess = 1.96 / math.sqrt(info)
    return float(max(10.0, margin * guess))


@dataclass
class Sample:
    """A named template with its systematics."""

    name: str
    template: Template
    systematics: SampleSystematics

    def spec(self, *, poi: bool = False) -> dict:
        return sample_spec(self.name, self.template, self.systematics, poi=poi)

    def scaled(self, factor: float) -> Sample:
        return Sample(self.name, self.template.scaled(factor), self.systematics)

    def without_nuisances(self) -> Sample:
        """The same yields without any modifier (a pure Poisson term per bin)."""
        return Sample(self.name, self.template, SampleSystematics(lumi=False, staterror=False))


@dataclass
class Channels:
    """The background side of the likelihood: ``{channel (region): [background samples]}``."""

    backgrounds: dict[str, list[Sample]]
    lumi_uncertainty: float

    def scaled(self, factor: float) -> Channels:
        """All yields times ``factor`` (a luminosity change)."""
        return Channels({ch: [s.scaled(factor) for s in ss] for ch, ss in self.backgrounds.items()}, self.lumi_uncertainty)

    def total(self, channel: str) -> np.ndarray:
        return np.sum([s.template.yields for s in self.backgrounds[channel]], axis=0)

    def without_nuisances(self) -> Channels:
        """The likelihood as "a product of Poisson distributions" (seed 003 sec. V.B): no
        luminosity, MC-statistics, normalisation or shape parameters; ``mu`` is the only one."""
        return Channels({ch: [s.without_nuisances() for s in ss] for ch, ss in self.backgrounds.items()},
                        self.lumi_uncertainty)

    def background_only(self, observations: Mapping[str, Sequence[float]]) -> dict:
        """The background-only workspace spec (POI ``mu`` named, added by the signal patches)."""
        chans = {ch: [s.spec() for s in ss] for ch, ss in self.backgrounds.items()}
        return build_workspace(chans, observations, lumi_uncertainty=self.lumi_uncertainty)

    def with_signal(
        self, observations: Mapping[str, Sequence[float]], signal: Mapping[str, Sample], *, validate: bool = True
    ) -> dict:
        """The full workspace spec with ``signal`` (per channel) scaled by ``mu``."""
        chans = {ch: [s.spec() for s in ss] + [signal[ch].spec(poi=True)] for ch, ss in self.backgrounds.items()}
        return build_workspace(
            chans,
            observations,
            lumi_uncertainty=self.lumi_uncertainty,
            poi_bounds=(0.0, self.poi_bound(signal)),
            validate=validate,
        )

    def poi_bound(self, signal: Mapping[str, Sample]) -> float:
        s = np.concatenate([signal[ch].template.yields for ch in self.backgrounds])
        b = np.concatenate([self.total(ch) for ch in self.backgrounds])
        return poi_upper_bound(s, b)

    def signal_patch(self, workspace: Mapping, signal: Mapping[str, Sample]) -> list[dict]:
        return signal_patch(
            workspace, {ch: signal[ch].spec(poi=True) for ch in self.backgrounds}, poi_bounds=(0.0, self.poi_bound(signal))
        )

    def asimov(self, signal: Mapping[str, Sample] | None = None, mu: float = 0.0) -> dict[str, np.ndarray]:
        """Nominal expectation (nuisance parameters at their nominal values): B + mu * S."""
        out = {}
        for ch in self.backgrounds:
            y = self.total(ch)
            if signal is not None and mu != 0.0:
                y = y + mu * signal[ch].template.yields
            out[ch] = y
        return out

