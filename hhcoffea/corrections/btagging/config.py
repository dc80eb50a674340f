"""The job file's ``btagging:`` section, per dataset, as objects the processor uses.

::

    btagging:
      working_point: DL1r_77        # a name from the working-point table (required with the section)
      tag: {bit: 2}                 # optional: overrides the table's rule (or {branch: X, threshold: Y})
      efficiency: btag_eff.json     # correctionlib maps (hhcoffea btag measure); weight/truth_tag
      scale_factors: default        # or a file, or {file: F, correction: NAME | {bc: A, light: B}}
      method: cut                   # cut | weight | truth_tag
      seed: 0                       # truth_tag: seed of the per-event draws
      working_points: {...}         # extends the shipped table (top level only)
      measure: {abseta: [...], pt: [...], min_jets: 100, flow: error}   # btag measure binning

Every key but ``working_points`` may be overridden per dataset (``datasets.NAME.btagging``).
Without a section, jets' tag is bit 0 of the bitmask and events are cut on it (as before).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .maps import DEFAULT_ABSETA_EDGES, DEFAULT_MIN_JETS, DEFAULT_PT_EDGES, BTagCorrections, default_scale_factor_path
from .truth_tag import file_key
from .weights import VARIATIONS, method_1a_weights, truth_tag_weights
from .working_points import DEFAULT_TAG_BIT, TagRule, WorkingPoint, load_working_points

__all__ = ["METHODS", "KEYS", "DEFAULTS", "BTagSetup", "BTagging", "parse_btagging", "measure_options"]

METHODS = ("cut", "weight", "truth_tag")
#: keys of ``btagging:`` and their defaults (``None``: absent)
DEFAULTS = {"working_point": None, "tag": None, "efficiency": None, "scale_factors": "default", "method": "cut",
            "seed": 0, "working_points": None, "measure": None}
KEYS = tuple(DEFAULTS)
_MEASURE_KEYS = ("abseta", "pt", "min_jets", "flow")


@dataclass
class BTagSetup:
    """One dataset's b-tagging: which tag, which method, which corrections.

    ``working_point`` None means no ``btagging:`` section: bit 0, cut.
    """

    working_point: WorkingPoint | None = None
    tag: TagRule | None = None
    method: str = "cut"
    corrections: BTagCorrections | None = None
    seed: int = 0
    key: str = "btagging"
    efficiency_path: Path | None = None
    _rules: dict = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.working_point.name if self.working_point else f"bit{DEFAULT_TAG_BIT}"

    def rule(self, layout: str) -> TagRule:
        """The tag rule for a file layout: the job's ``tag``, else the table's, else bit 0."""
        if layout not in self._rules:
            if self.tag is not None:
                self._rules[layout] = self.tag
            elif self.working_point is not None:
                self._rules[layout] = self.working_point.rule(layout, f"{self.key}.working_point")
            else:
                self._rules[layout] = TagRule(bit=DEFAULT_TAG_BIT, key="(default: bit 0)")
        return self._rules[layout]

    def read(self, model) -> np.ndarray:
        """The event model's tag hook: flat bool per jet."""
        return self.rule(model.layout.name).read(model)

    @property
    def weighted(self) -> bool:
        return self.method != "cut"

    def event_weights(self, jets, base: np.ndarray, metadata: dict, entries: np.ndarray, nominal: str,
                      with_variations: bool, n_required: int):
        """Event weights of the selected ``jets`` (jagged; pt, eta, btag, flavour) of events with
        weight ``base``: ``({nominal: w, "btag_bc_up": ...}, jets)``; ``jets`` comes back with the
        drawn tags for ``truth_tag``. ``entries``: each event's entry number in its file."""
        import awkward as ak

        counts = ak.to_numpy(ak.num(jets.pt, axis=1))
        flat = {f: ak.to_numpy(ak.flatten(jets[f], axis=1)) for f in ("pt", "eta", "flavour")}
        abseta = np.abs(flat["eta"]).astype(np.float64)
        pt = flat["pt"].astype(np.float64)
        flavour = flat["flavour"].astype(np.int64)
        wp, key = self.working_point.name, self.working_point.correction_key
        eff = self.corrections.efficiency(wp, flavour, abseta, pt)
        systs = ("central", "up", "down") if with_variations else ("central",)
        sf = {s: self.corrections.scale_factors(s, key, flavour, abseta, pt) for s in systs}
        heavy = flavour != 0
        if self.method == "weight":
            tagged = ak.to_numpy(ak.flatten(jets.btag, axis=1)).astype(bool)
            return method_1a_weights(base, counts, tagged, eff, sf, heavy, nominal, with_variations), jets
        out, drawn = truth_tag_weights(base, counts, eff, sf, heavy, n_required, file_key(metadata), entries,
                                       self.seed, nominal, with_variations)
        return out, ak.with_field(jets, ak.unflatten(drawn, counts), "btag")


@dataclass
class BTagging:
    """Every dataset's :class:`BTagSetup` (``default`` for datasets without an override)."""

    default: BTagSetup = field(default_factory=BTagSetup)
    datasets: dict[str, BTagSetup] = field(default_factory=dict)

    def for_dataset(self, name: str) -> BTagSetup:
        return self.datasets.get(name, self.default)

    @property
    def setups(self) -> list[BTagSetup]:
        return [self.default, *self.datasets.values()]

    @property
    def variations(self) -> tuple[str, ...]:
        """The variation names a job may opt histograms into (when any dataset is weighted)."""
        return VARIATIONS if any(s.weighted for s in self.setups) else ()

    @property
    def configured(self) -> bool:
        return any(s.working_point is not None for s in self.setups)


def _merged(top: dict, override: dict | None, where: str) -> dict:
    """Defaults, then the top-level section, then the dataset's override (None: not set)."""
    spec = {**DEFAULTS, **{k: v for k, v in top.items() if k != "working_points" and v is not None}}
    for k, v in (override or {}).items():
        if k in ("working_points", "measure") and v is not None:
            raise ValueError(f"{where}.{k}: set it at the top level (btagging.{k})")
        if v is not None:
            spec[k] = v
    return spec


def _check_keys(spec, where: str):
    if spec is None:
        return {}
    if not isinstance(spec, dict):
        raise ValueError(f"{where}: expected a mapping of b-tagging keys, got {spec!r}")
    unknown = set(spec) - set(KEYS)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {sorted(unknown)}; known: {', '.join(KEYS)}")
    return spec


def _scale_factors(value, resolve, where: str):
    """(path, (bc correction, light correction) or None) from the ``scale_factors`` value."""
    correction = None
    if isinstance(value, dict):
        unknown = set(value) - {"file", "correction"}
        if unknown:
            raise ValueError(f"{where}.scale_factors: unknown key(s) {sorted(unknown)}; known: file, correction")
        correction = value.get("correction")
        value = value.get("file", "default")
    path = default_scale_factor_path() if value in (None, "default") else resolve(value)
    if isinstance(correction, str):
        correction = (correction, correction)
    elif isinstance(correction, dict):
        if set(correction) != {"bc", "light"}:
            raise ValueError(f"{where}.scale_factors.correction: give {{bc: NAME, light: NAME}}, got {correction!r}")
        correction = (correction["bc"], correction["light"])
    elif correction is not None:
        raise ValueError(f"{where}.scale_factors.correction: a name or {{bc: .., light: ..}}, got {correction!r}")
    return path, correction


def _setup(spec: dict, table: dict, resolve, where: str, load_corrections: bool) -> BTagSetup:
    name = spec["working_point"]
    if name is None:
        raise ValueError(f"{where}.working_point: required with a btagging section (one of {', '.join(table)})")
    if name not in table:
        raise ValueError(f"{where}.working_point: unknown working point {name!r}; known: {', '.join(table)}")
    method = spec["method"]
    if method not in METHODS:
        raise ValueError(f"{where}.method must be one of {', '.join(METHODS)}, got {method!r}")
    tag = TagRule.from_spec(spec["tag"], f"{where}.tag") if spec["tag"] is not None else None
    seed = spec["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{where}.seed must be an integer, got {seed!r}")
    setup = BTagSetup(working_point=table[name], tag=tag, method=method, seed=seed, key=where)
    if method != "cut":
        if not spec["efficiency"]:
            raise ValueError(f"{where}.efficiency: method {method!r} needs efficiency maps (make them with `hhcoffea btag measure`)")
        setup.efficiency_path = resolve(spec["efficiency"])
        if load_corrections:
            sf_path, sf_names = _scale_factors(spec["scale_factors"], resolve, where)
            setup.corrections = BTagCorrections(setup.efficiency_path, sf_path, sf_names, key=where)
    return setup


def parse_btagging(top: dict | None, datasets: dict | None, resolve=Path, load_corrections: bool = True) -> BTagging:
    """:class:`BTagging` from the job's ``btagging`` section and ``datasets`` entries (each may
    have a ``btagging`` override). ``resolve`` turns a job-relative path into a Path;
    ``load_corrections=False`` skips reading correctionlib files (``btag measure`` makes them)."""
    top = _check_keys(top, "btagging")
    table = load_working_points(top.get("working_points"))
    result = BTagging()
    if any(v is not None for v in top.values()):
        result.default = _setup(_merged(top, None, "btagging"), table, resolve, "btagging", load_corrections)
    for name, entry in (datasets or {}).items():
        override = _check_keys((entry or {}).get("btagging"), f"datasets.{name}.btagging")
        if any(v is not None for v in override.values()):
            where = f"datasets.{name}.btagging"
            result.datasets[name] = _setup(_merged(top, override, where), table, resolve, where, load_corrections)
    return result


def measure_options(top: dict | None) -> dict:
    """Binning and options of ``btag measure`` from ``btagging.measure`` (defaults filled in)."""
    spec = {k: v for k, v in ((top or {}).get("measure") or {}).items() if v is not None}
    unknown = set(spec) - set(_MEASURE_KEYS)
    if unknown:
        raise ValueError(f"btagging.measure: unknown key(s) {sorted(unknown)}; known: {', '.join(_MEASURE_KEYS)}")
    out = {"abseta": list(spec.get("abseta", DEFAULT_ABSETA_EDGES)), "pt": list(spec.get("pt", DEFAULT_PT_EDGES)),
           "min_jets": float(spec.get("min_jets", DEFAULT_MIN_JETS)), "flow": spec.get("flow", "error")}
    for axis in ("abseta", "pt"):
        edges = [float(e) for e in out[axis]]
        if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:])):
            raise ValueError(f"btagging.measure.{axis}: expected increasing bin edges, got {out[axis]}")
        out[axis] = edges
    if out["flow"] not in ("error", "clamp"):
        raise ValueError(f"btagging.measure.flow must be 'error' or 'clamp', got {out['flow']!r}")
    return out
