"""The job's ``statistics:`` section, parsed and checked (:class:`StatisticsConfig`).

All keys are optional unless marked::

    statistics:
      observable: m_hh              # histogram in the output's hists/; its last axis is the fitted observable
      regions: [signal]             # one channel per region ("region: signal" also accepted)
      pairer: min_dr
      selection: dnn_min_dr         # instead of regions + pairer: a score-based selection of the job
      luminosity: [139, 300, 3000]  # fb^-1; one analysis each; yields scale by L / metadata luminosity
      sqrt_s: 14                    # 14: signal sigma x SQRT_S_RESCALE_13_TO_14 (constants); 13: no rescaling
      background_sqrt_s_factor: 1.0 # backgrounds keep their 13 TeV cross sections unless set (see below)
      backgrounds: [qcd, ttbar]     # REQUIRED: background dataset names (default of both analyses)
      calculator: asymptotic        # CLs calculator: asymptotic, or toys (pseudo-experiments)
      n_toys: 10000                 # toys per hypothesis (calculator: toys)
      seed: 0                       # random seed of the toys (same seed, same limits)
      resonant: [X_500, X_1000]     # resonant signal datasets, one patch per m_X (m_x from metadata);
                                    #   or {datasets: [...], backgrounds: [...], regions: [...]} to
                                    #   override the backgrounds or regions of this analysis
      nonresonant:
        basis: [hh_kl1, hh_kl5, hh_kl10]        # exactly three datasets at distinct kappa_lambda
        backgrounds: [qcd_dl1r, ttbar_dl1r]     # optional override (e.g. another b-tag working point)
        regions: [signal]                       # optional override of the regions
        kappa_lambda: {start: -6, stop: 14, num: 81}   # the grid (or an explicit list)
        hypothesis: {kappa_lambda: 1.0, mu: 0.0}       # Asimov data of the kappa_lambda-POI scan
                                    #   (default mu: 0 = background only, which reproduces table VI's
                                    #   kappa_lambda-POI column; mu: 1 = S+B); the model keeps mu = 1
        check: hh_kl3               # optional fourth sample: morphing closure (chi2) in the summary
        morphing: auto              # lagrange, "emulation NNLO" (emulated shapes normalised to
                                    #   sigma_NNLO: K-factor weighted coefficients) or auto (detects those)
      systematics:
        lumi: 0.017                 # relative luminosity uncertainty (constants default)
        staterror: true             # MC statistical uncertainty from the sum of squared weights
        normsys:                    # normalisation uncertainties
          - {name: qcd_norm, samples: [qcd], hi: 1.10, lo: 0.90}
        histosys:                   # shape uncertainties from "<name>_up"/"<name>_down" histograms
          - {name: jes, samples: [qcd, signal]}   # "signal": every signal sample
      merge_empty_bins: false       # true: per channel, merge each bin with no expected background
                                    #   (total <= 0) into its neighbour with more background, for every
                                    #   sample, histosys template and the data (recorded in the summary);
                                    #   false: such a bin is an error (the likelihood is undefined there)
      data: asimov                  # asimov: each result's stated Asimov hypothesis (below);
                                    #   {asimov: {mu: 0.5}}: resonant data = B + 0.5 x each patch's signal;
                                    #   {dataset: data_obs}: a histogram, used by every result
      compare:                      # optional: kappa_lambda intervals of several selections side by side
        luminosity: [300]           #   (the demo's table; reference: a row of the seeds' table VI)
        cut_min_dr: {regions: [signal], pairer: min_dr, reference: cut_based_min_dr}
        dnn_min_dr: {selection: dnn_min_dr, reference: dnn_min_dr}
        paper_min_dr: {pairer: min_dr, likelihood: poisson, backgrounds: [qcd], reference: cut_based_min_dr}
                                    #   likelihood: job (default; the job's systematics) or poisson
                                    #   (the seeds': Poisson terms only, no nuisance parameters);
                                    #   backgrounds: default the non-resonant backgrounds
      equivalent_luminosity:        # optional: luminosity at which a baseline matches this Delta kappa
        baseline: {pairer: min_dr}  # region(s)/pairer of the baseline selection
        luminosity: 300             # luminosity of this (the better) selection
        methods: [profile]          # profile and/or cls

The data of each result, with ``data: asimov``: resonant limits -- background-only Asimov (or
S+B Asimov with ``{asimov: {mu: ..}}``); the CLs kappa_lambda interval (mu as POI) --
background-only Asimov, the LHC searches' convention for expected limits; the profile-likelihood
kappa_lambda interval (kappa_lambda as POI) -- Asimov data at ``nonresonant.hypothesis``: by default
background only (mu = 0), the hypothesis whose scan reproduces the paper's table VI, where the
kappa_lambda-POI interval nearly equals the mu-POI CLs one (seed 003 sec. VI); ``mu: 1`` gives the
S+B Asimov at ``kappa_lambda`` instead. Asimov
data are the nominal expectation (nuisance parameters at their nominal values). Every output
names its data (:class:`DataHypothesis`).

Background cross sections: the reference rescales the 13 TeV *signal* cross sections to 14 TeV
(PHYSICS.md, Statistics); PHYSICS.md gives no 14 TeV background cross section, so backgrounds keep
their 13 TeV normalisation unless ``background_sqrt_s_factor`` says otherwise. A given dataset
(``data: {dataset: ...}``) is scaled by L / L0 like everything else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .. import constants
from .limits import CALCULATORS
from .workspace import MissingInputError, NormSys, SampleSystematics

__all__ = ["COMPARE_LIKELIHOODS", "StatisticsConfig", "DataHypothesis", "SIGNAL", "selection_region"]

#: sample name of the signal in every workspace, and the systematics keyword for "every signal"
SIGNAL = "signal"
#: likelihoods of a ``compare`` row: the job's (its systematics), or the seeds' "product of Poisson
#: distributions" without nuisance parameters (seed 003 sec. V.B), the convention of table VI
COMPARE_LIKELIHOODS = ("job", "poisson")
_COMPARE_ROW_KEYS = {"selection", "regions", "pairer", "reference", "likelihood", "backgrounds"}


_KEYS = {
    "observable", "regions", "region", "pairer", "luminosity", "sqrt_s", "background_sqrt_s_factor",
    "backgrounds", "calculator", "n_toys", "seed", "resonant", "nonresonant", "systematics", "data",
    "equivalent_luminosity", "selection", "compare", "merge_empty_bins",
}  # fmt: skip
_SUB_KEYS = {
    "resonant": {"datasets", "backgrounds", "regions"},
    "nonresonant": {"basis", "backgrounds", "regions", "kappa_lambda", "hypothesis", "check", "morphing"},
    "systematics": {"lumi", "staterror", "normsys", "histosys"},
    "equivalent_luminosity": {"baseline", "luminosity", "methods"},
}


def _check_keys(where: str, section: Mapping, known: set[str]) -> None:
    """One-line error for an unknown key (a typo would otherwise be ignored silently)."""
    import difflib

    for key in section:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(sorted(known))})"
            raise ValueError(f"{where}.{key}: unknown key{hint}")


def _as_list(value) -> list:
    return [value] if isinstance(value, str) else list(value)


def _as_list_numbers(value) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


@dataclass(frozen=True)
class DataHypothesis:
    """What a result's data are: an observed histogram, or Asimov data of B + mu x S(kappa_lambda).

    ``kind`` is ``"observed"``, ``"background-only Asimov"`` or ``"S+B Asimov"``; ``signal``
    names the signal of an S+B Asimov set (``kappa_lambda=1`` or ``each m_X``).
    """

    kind: str
    mu: float = 0.0
    signal: str | None = None
    dataset: str | None = None

    @classmethod
    def asimov(cls, mu: float, signal: str | None = None) -> DataHypothesis:
        return cls("background-only Asimov") if mu == 0.0 else cls("S+B Asimov", mu=float(mu), signal=signal)

    @property
    def label(self) -> str:
        """One line naming the data exactly (summary, JSON, plots)."""
        if self.kind == "observed":
            return f"observed histogram {self.dataset!r} (x L/L0)"
        if self.kind == "background-only Asimov":
            return "background-only Asimov"
        return f"S+B Asimov at {self.signal}, mu={self.mu:g}"

    def to_dict(self) -> dict:
        out = {"label": self.label, "kind": self.kind}
        if self.kind == "S+B Asimov":
            out.update(mu=self.mu, signal=self.signal)
        if self.dataset is not None:
            out["dataset"] = self.dataset
        return out


def selection_region(name: str, metadata: Mapping) -> tuple[list[str], str]:
    """``([region], pairer)`` of the job's score-based selection ``name`` (metadata.json lists them)."""
    known = metadata.get("selections") or {}
    if name not in known:
        raise MissingInputError(f"statistics: selection {name!r} is not among the run's selections {sorted(known)}")
    return [name], str(known[name]["pairer"])


class StatisticsConfig:
    """The parsed ``statistics:`` section (see the module docstring)."""

    def __init__(self, cfg: Mapping, metadata: Mapping) -> None:
        cfg = dict(cfg or {})
        _check_keys("statistics", cfg, _KEYS)
        for name in ("nonresonant", "systematics", "equivalent_luminosity"):
            if isinstance(cfg.get(name), Mapping):
                _check_keys(f"statistics.{name}", cfg[name], _SUB_KEYS[name])
        if isinstance(cfg.get("resonant"), Mapping):
            _check_keys("statistics.resonant", cfg["resonant"], _SUB_KEYS["resonant"])
        self.observable = cfg.get("observable", "m_hh")
        regions = cfg.get("regions", cfg.get("region", "signal"))
        self.regions = [regions] if isinstance(regions, str) else list(regions)
        self.pairer = cfg.get("pairer", "min_dr")
        if cfg.get("selection"):  # a score-based selection of the job: its region, its pairer
            self.regions, self.pairer = selection_region(cfg["selection"], metadata)
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
        # background only by default: its kappa_lambda-POI scan reproduces table VI (see above)
        self.kappa_mu = float(hyp.get("mu", 0.0))
        self.check = nr.get("check")
        self.morphing = str(nr.get("morphing", "auto"))
        if self.morphing not in ("auto", "lagrange", "emulation NNLO"):
            raise ValueError(f"statistics.nonresonant.morphing must be auto, lagrange or 'emulation NNLO', got {self.morphing!r}")
        self.calculator = str(cfg.get("calculator", "asymptotic"))
        if self.calculator not in CALCULATORS:
            raise ValueError(f"statistics.calculator must be one of {CALCULATORS}, got {self.calculator!r}")
        self.n_toys = int(cfg.get("n_toys", 10000))
        self.seed = int(cfg.get("seed", 0))
        syst = cfg.get("systematics") or {}
        self.lumi_uncertainty = float(syst.get("lumi", constants.DEFAULT_LUMI_RELATIVE_UNCERTAINTY))
        self.staterror = bool(syst.get("staterror", True))
        self.normsys = [dict(x) for x in syst.get("normsys") or []]
        self.histosys = [dict(x) for x in syst.get("histosys") or []]
        self.merge_empty_bins = cfg.get("merge_empty_bins", False)
        if not isinstance(self.merge_empty_bins, bool):
            raise ValueError(f"statistics.merge_empty_bins must be true or false, got {self.merge_empty_bins!r}")
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
        # selections side by side: label -> {selection: name} or {regions, pairer}, reference
        cmp = dict(cfg.get("compare") or {})
        self.compare_luminosities = [float(x) for x in _as_list_numbers(cmp.pop("luminosity", [constants.REFERENCE_LUMINOSITY]))]
        self.compare = {}
        for label, spec in cmp.items():
            spec = dict(spec or {})
            _check_keys(f"statistics.compare.{label}", spec, _COMPARE_ROW_KEYS)
            if spec.get("selection"):
                regions, pairer = selection_region(spec["selection"], metadata)
            else:
                regions, pairer = _as_list(spec.get("regions", self.nonresonant_regions)), spec.get("pairer", self.pairer)
            ref = spec.get("reference")
            if ref is not None and ref not in constants.REFERENCE_KAPPA_INTERVALS_TABLE_VI:
                raise ValueError(f"statistics.compare.{label}.reference: got {ref!r}; expected one of "
                                 f"{sorted(constants.REFERENCE_KAPPA_INTERVALS_TABLE_VI)}")
            likelihood = spec.get("likelihood", "job")
            if likelihood not in COMPARE_LIKELIHOODS:
                raise ValueError(f"statistics.compare.{label}.likelihood: got {likelihood!r}; expected one of "
                                 f"{list(COMPARE_LIKELIHOODS)}")
            backgrounds = _as_list(spec.get("backgrounds", self.nonresonant_backgrounds))
            for name in backgrounds:
                if name not in metadata.get("datasets", {}):
                    raise MissingInputError(f"statistics.compare.{label}.backgrounds: dataset {name!r} not in "
                                            "metadata.json datasets")
            self.compare[label] = {"regions": regions, "pairer": pairer, "reference": ref,
                                   "likelihood": likelihood, "backgrounds": backgrounds}
        datasets = metadata.get("datasets", {})
        for name in self.all_backgrounds + self.resonant + self.basis + ([self.check] if self.check else []):
            if name not in datasets:
                raise MissingInputError(f"dataset {name!r} not in metadata.json datasets")

    @property
    def resonant_data(self) -> DataHypothesis:
        """Data of the resonant limits."""
        if self.data_dataset:
            return DataHypothesis("observed", dataset=self.data_dataset)
        return DataHypothesis.asimov(self.resonant_mu, "each m_X's signal")

    @property
    def cls_data(self) -> DataHypothesis:
        """Data of the CLs kappa_lambda scan (mu as POI): background-only Asimov unless observed."""
        if self.data_dataset:
            return DataHypothesis("observed", dataset=self.data_dataset)
        return DataHypothesis.asimov(0.0)

    @property
    def profile_data(self) -> DataHypothesis:
        """Data of the kappa_lambda-POI profile scan: Asimov at the hypothesis (default background
        only) unless observed."""
        if self.data_dataset:
            return DataHypothesis("observed", dataset=self.data_dataset)
        return DataHypothesis.asimov(self.kappa_mu, f"kappa_lambda={self.kappa_hypothesis:g}")

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


