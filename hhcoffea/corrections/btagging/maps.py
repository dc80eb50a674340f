"""b-tagging efficiency maps and scale factors as correctionlib files (schema v2).

Efficiency maps (written by ``hhcoffea btag measure``) hold three corrections, each with the
inputs ``working_point`` (string), ``flavor`` (int: 5, 4, 0), ``abseta``, ``pt`` (real), in this
order, as in the CMS BTV layout:

* ``btag_efficiency``: the tag efficiency ε;
* ``btag_efficiency_stat``: its statistical uncertainty (absolute);
* ``btag_efficiency_jets``: the effective number of jets the value comes from. Bins with fewer
  than ``min_jets`` jets are merged with their pT neighbours (or, if a whole |η| row is short,
  over the flavour), so neighbouring bins can share one value and one count; 0 flags a flavour
  with too few jets overall, which gets the working point's nominal efficiency.

Values are posterior means (k + ½)/(n + 1) of the tagged fraction, never exactly 0 or 1.
Out-of-range inputs are an error by default; ``flow="clamp"`` clamps (correctionlib's ``flow``).

Scale factors are read in the CMS BTV layout: inputs ``systematic`` (``central``, ``up``,
``down``; up/down are the varied scale factors, not shifts), ``working_point``, ``flavor``,
``abseta``, ``pt``. A file may hold b/c and light jets in one correction or in two (CMS:
``deepJet_comb`` for b/c, ``deepJet_incl`` for light). ``data/scale_factors_default.json`` holds
unit scale factors for every working point of the table with the uncertainties of
:data:`DEFAULT_SF_UNCERTAINTY`.
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

__all__ = [
    "EFFICIENCY",
    "EFFICIENCY_STAT",
    "EFFICIENCY_JETS",
    "DEFAULT_ABSETA_EDGES",
    "DEFAULT_PT_EDGES",
    "DEFAULT_MIN_JETS",
    "DEFAULT_SF_UNCERTAINTY",
    "FLAVOURS",
    "EfficiencyMap",
    "efficiency_maps",
    "efficiency_correction_set",
    "write_efficiency_file",
    "default_scale_factor_set",
    "default_scale_factor_path",
    "BTagCorrections",
]

EFFICIENCY = "btag_efficiency"
EFFICIENCY_STAT = "btag_efficiency_stat"
EFFICIENCY_JETS = "btag_efficiency_jets"
FLAVOURS = (5, 4, 0)
EFFICIENCY_INPUTS = ("working_point", "flavor", "abseta", "pt")
SF_INPUTS = ("systematic", "working_point", "flavor", "abseta", "pt")
#: |eta| up to the four-tag acceptance; pT from the selection's 40 GeV, the top bin open
DEFAULT_ABSETA_EDGES = (0.0, 0.6, 1.2, 1.8, 2.5)
DEFAULT_PT_EDGES = (40.0, 60.0, 80.0, 110.0, 150.0, 200.0, 300.0, 500.0, 1000.0, float("inf"))
DEFAULT_MIN_JETS = 100
#: relative uncertainty of the shipped unit scale factors, per flavour: typical sizes of the
#: Run-2 ATLAS/CMS calibrations (b a few %, c about twice b as in CMS' "comb" method, light ~10%)
DEFAULT_SF_UNCERTAINTY = {5: 0.03, 4: 0.06, 0: 0.10}


def _edges_json(edges) -> list:
    return [("inf" if e == np.inf else "-inf" if e == -np.inf else float(e)) for e in edges]


@dataclass
class EfficiencyMap:
    """One working point and flavour: ``efficiency``, ``stat`` and ``jets`` on (|η|, pT) bins."""

    efficiency: np.ndarray
    stat: np.ndarray
    jets: np.ndarray


def _merge_row(n: np.ndarray, k: np.ndarray, min_jets: float):
    """Group consecutive pT bins until each group has ``min_jets`` (a short tail joins the last
    full group); returns per-bin group totals (n, k)."""
    groups, current = [], []
    for i in range(len(n)):
        current.append(i)
        if n[current].sum() >= min_jets:
            groups.append(current)
            current = []
    if current:
        if groups:
            groups[-1] = groups[-1] + current
        else:
            groups.append(current)
    n_out, k_out = np.empty_like(n), np.empty_like(k)
    for g in groups:
        n_out[g], k_out[g] = n[g].sum(), k[g].sum()
    return n_out, k_out


def efficiency_maps(sum_all: np.ndarray, sum2_all: np.ndarray, sum_tagged: np.ndarray, nominal: float,
                    min_jets: float = DEFAULT_MIN_JETS) -> EfficiencyMap:
    """ε on (|η|, pT) bins from weighted jet sums of one working point and flavour.

    ``sum_all``/``sum2_all``: Σw and Σw² of all jets per bin; ``sum_tagged``: Σw of the tagged.
    Counts are effective jet numbers n = (Σw)²/Σw²; short bins are merged (module docstring);
    a flavour with fewer than ``min_jets`` jets in total gets ``nominal`` (jets = 0).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(sum2_all > 0, sum_all**2 / sum2_all, 0.0)
        k = np.where(sum_all > 0, sum_tagged / sum_all, 0.0) * n
    n_out, k_out = np.empty_like(n), np.empty_like(k)
    total_n, total_k = n.sum(), k.sum()
    for row in range(n.shape[0]):
        if n[row].sum() >= min_jets:
            n_out[row], k_out[row] = _merge_row(n[row], k[row], min_jets)
        else:  # the whole |eta| row is short: the flavour's average
            n_out[row], k_out[row] = total_n, total_k
    if total_n < min_jets:
        eff = np.full(n.shape, float(nominal))
        return EfficiencyMap(eff, np.sqrt(eff * (1.0 - eff)), np.zeros(n.shape))
    eff = (k_out + 0.5) / (n_out + 1.0)
    stat = np.sqrt(eff * (1.0 - eff) / (n_out + 2.0))
    return EfficiencyMap(eff, stat, n_out)


def _category(input_name: str, items: dict):
    from correctionlib import schemav2 as cs

    return cs.Category(nodetype="category", input=input_name,
                       content=[cs.CategoryItem(key=key, value=value) for key, value in items.items()])


def _inputs(names_types):
    from correctionlib import schemav2 as cs

    descriptions = {
        "systematic": "central, up or down", "working_point": "b-tagging working point",
        "flavor": "hadron flavour: 5 b, 4 c, 0 light", "abseta": "|eta| of the jet", "pt": "jet pT [GeV]",
    }
    return [cs.Variable(name=n, type=t, description=descriptions[n]) for n, t in names_types]


def efficiency_correction_set(maps: dict, abseta_edges, pt_edges, flow: str = "error", description: str = ""):
    """The correctionlib ``CorrectionSet`` (pydantic, schema v2) of measured maps.

    ``maps``: working point -> flavour -> :class:`EfficiencyMap`; ``flow``: ``error`` or ``clamp``.
    """
    from correctionlib import schemav2 as cs

    if flow not in ("error", "clamp"):
        raise ValueError(f"flow must be 'error' or 'clamp', got {flow!r}")
    edges = [_edges_json(abseta_edges), _edges_json(pt_edges)]
    inputs = _inputs([("working_point", "string"), ("flavor", "int"), ("abseta", "real"), ("pt", "real")])

    def node(values):
        return cs.MultiBinning(nodetype="multibinning", inputs=["abseta", "pt"], edges=edges,
                               content=[float(v) for v in np.ravel(values)], flow=flow)

    corrections = []
    for name, attr, output, text in (
        (EFFICIENCY, "efficiency", "efficiency", "b-tagging efficiency per working point, flavour, |eta|, pT"),
        (EFFICIENCY_STAT, "stat", "uncertainty", "statistical uncertainty (absolute) of btag_efficiency"),
        (EFFICIENCY_JETS, "jets", "jets", "effective jets behind each value (bins merged to >= min_jets; 0: nominal used)"),
    ):
        data = _category("working_point", {
            wp: _category("flavor", {int(f): node(getattr(m, attr)) for f, m in by_flavour.items()})
            for wp, by_flavour in maps.items()
        })
        corrections.append(cs.Correction(name=name, description=text, version=1, inputs=inputs,
                                         output=cs.Variable(name=output, type="real"), data=data))
    return cs.CorrectionSet(schema_version=2, description=description or "hhcoffea btag measure", corrections=corrections)


def write_efficiency_file(cset, path) -> Path:
    """Write a ``CorrectionSet`` as JSON (gzip if the name ends in .gz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = cset.model_dump_json(exclude_unset=True, indent=1)
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as f:
            f.write(text)
    else:
        path.write_text(text + "\n")
    return path


def default_scale_factor_set(working_point_keys, uncertainty: dict | None = None):
    """Unit scale factors in the CMS BTV layout for these working-point keys, up/down = 1 ± δ
    per flavour (:data:`DEFAULT_SF_UNCERTAINTY`), flat in |η| < 2.5 and pT ≥ 20 GeV (clamped)."""
    from correctionlib import schemav2 as cs

    uncertainty = uncertainty or DEFAULT_SF_UNCERTAINTY

    def flat(value):
        return cs.MultiBinning(nodetype="multibinning", inputs=["abseta", "pt"], edges=[[0.0, 2.5], [20.0, "inf"]],
                               content=[float(value)], flow="clamp")

    data = _category("systematic", {
        syst: _category("working_point", {
            key: _category("flavor", {f: flat(1.0 + sign * uncertainty[f]) for f in FLAVOURS})
            for key in working_point_keys
        })
        for syst, sign in (("central", 0.0), ("up", 1.0), ("down", -1.0))
    })
    text = ("unit b-tagging scale factors (no calibration), up/down = 1 +- "
            + ", ".join(f"{uncertainty[f]:.0%} for flavour {f}" for f in FLAVOURS))
    corr = cs.Correction(name="btag_scale_factors", description=text, version=1,
                         inputs=_inputs([("systematic", "string"), ("working_point", "string"), ("flavor", "int"),
                                         ("abseta", "real"), ("pt", "real")]),
                         output=cs.Variable(name="scale_factor", type="real"), data=data)
    return cs.CorrectionSet(schema_version=2, description="hhcoffea default b-tagging scale factors", corrections=[corr])


def default_scale_factor_path() -> Path:
    return Path(str(resources.files(__package__).joinpath("data").joinpath("scale_factors_default.json")))


def _read_text(path) -> str:
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt") as f:
                return f.read()
        return path.read_text()
    except OSError as err:
        raise ValueError(f"{path}: cannot read correctionlib file ({err.strerror or err})") from None


def _load(text: str, path):
    import correctionlib

    try:
        return correctionlib.CorrectionSet.from_string(text)
    except Exception as err:  # noqa: BLE001 -- correctionlib raises RuntimeError/ValueError
        reason = " ".join(str(err).split())[:200]
        raise ValueError(f"{path}: not a correctionlib JSON file ({reason})") from None


def _check_inputs(cset, name: str, expected, path, key: str):
    if name not in cset:
        raise ValueError(f"{path}: no correction {name!r} ({key}); it has {', '.join(cset) or 'none'}")
    got = tuple(v.name for v in cset[name].inputs)
    if tuple(expected) != got:
        raise ValueError(f"{path}: correction {name!r} has inputs {list(got)}, expected {list(expected)} ({key})")


class BTagCorrections:
    """Efficiency maps and scale factors of one b-tagging setup, evaluated on flat jet arrays.

    Holds the JSON text (so it pickles to workers cheaply) and loads correctionlib on first use.
    ``sf_corrections``: correction name for b/c jets and for light jets (the same name for a
    one-correction file).
    """

    def __init__(self, efficiency_path, sf_path=None, sf_corrections: tuple[str, str] | None = None,
                 key: str = "btagging"):
        self.key = key
        self.efficiency_path = str(efficiency_path)
        self.sf_path = str(sf_path or default_scale_factor_path())
        self._eff_text = _read_text(self.efficiency_path)
        self._sf_text = _read_text(self.sf_path)
        eff, sf = _load(self._eff_text, self.efficiency_path), _load(self._sf_text, self.sf_path)
        for name in (EFFICIENCY, EFFICIENCY_STAT):
            _check_inputs(eff, name, EFFICIENCY_INPUTS, self.efficiency_path, f"{key}.efficiency")
        if sf_corrections is None:
            names = [n for n in sf if tuple(v.name for v in sf[n].inputs) == SF_INPUTS]
            if len(names) != 1:
                raise ValueError(f"{self.sf_path}: expected one correction with inputs {list(SF_INPUTS)}, found "
                                 f"{names or 'none'}; name them in {key}.scale_factors: {{file, correction: {{bc: .., light: ..}}}}")
            sf_corrections = (names[0], names[0])
        for name in set(sf_corrections):
            _check_inputs(sf, name, SF_INPUTS, self.sf_path, f"{key}.scale_factors")
        self.sf_corrections = tuple(sf_corrections)
        self._loaded = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_loaded"] = None
        return state

    def _sets(self):
        if self._loaded is None:
            self._loaded = (_load(self._eff_text, self.efficiency_path), _load(self._sf_text, self.sf_path))
        return self._loaded

    @staticmethod
    def _evaluate(corr, path, args, abseta, pt):
        try:
            return np.asarray(corr.evaluate(*args), dtype=np.float64)
        except Exception as err:  # noqa: BLE001 -- correctionlib: RuntimeError / IndexError
            where = ""
            if len(pt):
                where = f" (jets with |eta| in [{abseta.min():.3g}, {abseta.max():.3g}], pT in [{pt.min():.4g}, {pt.max():.4g}])"
            raise ValueError(f"{path}: correction {corr.name!r} cannot evaluate{where}: {' '.join(str(err).split())}") from None

    def efficiency(self, working_point: str, flavour, abseta, pt, stat: bool = False) -> np.ndarray:
        corr = self._sets()[0][EFFICIENCY_STAT if stat else EFFICIENCY]
        flavour = np.asarray(flavour, dtype=np.int64)
        if len(flavour) == 0:
            return np.zeros(0)
        return self._evaluate(corr, self.efficiency_path, (working_point, flavour, abseta, pt), abseta, pt)

    def scale_factors(self, systematic: str, working_point: str, flavour, abseta, pt) -> np.ndarray:
        """Scale factors per jet: b/c jets from the first correction, light from the second."""
        flavour = np.asarray(flavour, dtype=np.int64)
        out = np.ones(len(flavour))
        sf = self._sets()[1]
        bc, light = self.sf_corrections
        heavy = flavour != 0
        parts = [(bc, np.ones(len(flavour), dtype=bool))] if bc == light else [(bc, heavy), (light, ~heavy)]
        for name, sel in parts:
            if sel.any():
                out[sel] = self._evaluate(sf[name], self.sf_path, (systematic, working_point, flavour[sel], abseta[sel], pt[sel]),
                                          abseta[sel], pt[sel])
        return out


def as_json_dict(cset) -> dict:
    """A pydantic ``CorrectionSet`` as a plain dict (what the file holds)."""
    return json.loads(cset.model_dump_json(exclude_unset=True))
