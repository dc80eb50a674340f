"""b-tagging working points as data, and how a jet's tag is read from a file.

The table ships as ``data/working_points.json`` and a job may extend it (``btagging:
{working_points: {NAME: {...}}}``). Each entry: ``b_efficiency``, ``c_rejection``,
``light_rejection`` (the PHYSICS.md working points take theirs from
``hhcoffea.constants.BTAG_WORKING_POINTS``, so each number lives once), ``tag`` per layout
(``{bit: N}`` of the ``Jet_btag``/``Jet.BTag`` bitmask, or ``{branch: NAME, threshold: X}``: a
discriminant, tagged when above), and ``correction_key``, the working_point string of
correctionlib files (default: the name).

:class:`TagRule` reads the tag of every jet of a chunk through the event model's hook
(``EventModel(tag=rule)``), with one-line errors naming the file, the branch and the job key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from ... import constants as C

__all__ = [
    "WorkingPoint",
    "TagRule",
    "DEFAULT_TAG_BIT",
    "load_working_points",
    "emulation_bits",
    "check_tag_branch",
]

#: the bit a reader that knows no working point takes (the sample's / the Delphes card's own)
DEFAULT_TAG_BIT = 0
_LAYOUTS = ("nanoaod", "delphes")


@dataclass(frozen=True)
class TagRule:
    """How the tag of a jet is read: ``bit`` of the layout's tag bitmask, or ``branch`` (a jet
    branch, without the collection prefix) strictly above ``threshold``.

    ``key`` is the job-file key the rule came from (for error messages).
    """

    bit: int | None = None
    branch: str | None = None
    threshold: float | None = None
    key: str = "btagging.tag"

    def __post_init__(self):
        if (self.bit is None) == (self.branch is None):
            raise ValueError(f"{self.key}: give either 'bit' or 'branch' (with 'threshold'), got {self.describe()}")
        if self.bit is not None and (isinstance(self.bit, bool) or not isinstance(self.bit, int) or not 0 <= self.bit < 64):
            raise ValueError(f"{self.key}.bit must be an integer 0..63, got {self.bit!r}")
        if self.branch is not None and (isinstance(self.threshold, bool) or not isinstance(self.threshold, (int, float))):
            raise ValueError(f"{self.key}: a discriminant 'branch' needs a numeric 'threshold', got {self.threshold!r}")
        if self.bit is not None and self.threshold is not None:
            raise ValueError(f"{self.key}: 'threshold' goes with 'branch', not with 'bit'")

    @classmethod
    def from_spec(cls, spec, key: str) -> TagRule:
        if not isinstance(spec, dict) or not set(spec) <= {"bit", "branch", "threshold"}:
            raise ValueError(f"{key}: expected {{bit: N}} or {{branch: NAME, threshold: X}}, got {spec!r}")
        return cls(bit=spec.get("bit"), branch=spec.get("branch"), threshold=spec.get("threshold"), key=key)

    def describe(self) -> str:
        return f"bit {self.bit}" if self.bit is not None else f"{self.branch} > {self.threshold}"

    def read(self, model) -> np.ndarray:
        """Flat bool per jet of the chunk (file order); ``model`` is an ``EventModel``."""
        where = model.metadata.get("filename", "input")
        coll = model.layout.collections["jets"][0]
        if self.bit is not None:
            source = model.layout.collections["jets"][1]["btag"]
            name = model.layout.branch(coll, source)
            try:
                mask = model.column("jets", "btag")
            except Exception:  # noqa: BLE001 -- coffea raises several kinds for a missing branch
                raise ValueError(f"{where}: no branch '{name}' to read {self.key} (bit {self.bit}) from") from None
            if mask.dtype.kind not in "iu" or self.bit >= 8 * mask.dtype.itemsize:
                raise ValueError(f"{where}: branch '{name}' ({mask.dtype}) has no bit {self.bit} ({self.key})")
            return ((mask.astype(np.uint64, copy=False) >> np.uint64(self.bit)) & np.uint64(1)) != 0
        name = model.layout.branch(coll, self.branch)
        try:
            values = model.jet_branch(self.branch)
        except KeyError:
            raise ValueError(f"{where}: no branch '{name}' for {self.key}.branch") from None
        if values.dtype.kind not in "iuf":
            raise ValueError(f"{where}: branch '{name}' is {values.dtype}, not a numeric discriminant ({self.key}.threshold)")
        return values > self.threshold

    def branch_name(self, layout) -> str:
        """The on-disk branch this rule reads, in ``layout``."""
        coll, fields = layout.collections["jets"]
        return layout.branch(coll, fields["btag"] if self.bit is not None else self.branch)


@dataclass(frozen=True)
class WorkingPoint:
    """One row of the working-point table."""

    name: str
    b_efficiency: float
    c_rejection: float
    light_rejection: float
    tag: dict = field(default_factory=dict)  # layout -> TagRule
    correction_key: str = ""
    tagger: str = ""
    source: str = ""

    def efficiency(self, flavour) -> np.ndarray:
        """Nominal tag probability per flavour (5, 4, else light)."""
        flavour = np.asarray(flavour)
        return np.where(flavour == 5, self.b_efficiency,
                        np.where(flavour == 4, 1.0 / self.c_rejection, 1.0 / self.light_rejection))

    def rule(self, layout: str, key: str = "btagging.working_point") -> TagRule:
        """The tag rule for a layout (``nanoaod``/``delphes``); a one-line error if the table has none."""
        if layout not in self.tag:
            raise ValueError(
                f"{key}: working point {self.name!r} says nothing about reading the {layout} layout "
                f"(has: {', '.join(self.tag) or 'none'}); give btagging.tag: {{bit: N}} or {{branch: NAME, threshold: X}}"
            )
        return self.tag[layout]


def _entry(name: str, spec: dict, where: str) -> WorkingPoint:
    if not isinstance(spec, dict):
        raise ValueError(f"{where}.{name}: a working point is a mapping, got {spec!r}")
    numbers = {}
    physics = C.BTAG_WORKING_POINTS.get(name)
    for k in ("b_efficiency", "c_rejection", "light_rejection"):
        if k in spec and physics is not None and float(spec[k]) != physics[k]:
            raise ValueError(f"{where}.{name}.{k}: {name} is a PHYSICS.md working point ({k} = {physics[k]}); it cannot be redefined")
        value = spec.get(k, physics[k] if physics else None)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{where}.{name}.{k}: expected a positive number, got {value!r}")
        numbers[k] = float(value)
    if not 0 < numbers["b_efficiency"] < 1 or numbers["c_rejection"] < 1 or numbers["light_rejection"] < 1:
        raise ValueError(f"{where}.{name}: need 0 < b_efficiency < 1 and rejections >= 1, got {numbers}")
    tags = spec.get("tag") or {}
    unknown = set(tags) - set(_LAYOUTS)
    if unknown:
        raise ValueError(f"{where}.{name}.tag: unknown layout(s) {sorted(unknown)}; known: {', '.join(_LAYOUTS)}")
    rules = {lay: TagRule.from_spec(t, f"{where}.{name}.tag.{lay}") for lay, t in tags.items()}
    return WorkingPoint(name=name, **numbers, tag=rules, correction_key=str(spec.get("correction_key", name)),
                        tagger=str(spec.get("tagger", "")), source=str(spec.get("source", "")))


def _shipped() -> dict:
    text = resources.files(__package__).joinpath("data").joinpath("working_points.json").read_text()
    return json.loads(text)["working_points"]


def load_working_points(extra: dict | None = None, where: str = "btagging.working_points") -> dict[str, WorkingPoint]:
    """The shipped table, extended (or entries replaced, except the PHYSICS.md numbers) by ``extra``."""
    table = {name: _entry(name, spec, "working_points.json") for name, spec in _shipped().items()}
    for name, spec in (extra or {}).items():
        base = {}
        if name in table:  # a job may add a layout's rule or a correction key to a shipped entry
            base = json.loads(json.dumps(_shipped().get(name, {})))
            base["tag"] = {**base.get("tag", {}), **(spec.get("tag") or {})}
            spec = {**base, **{k: v for k, v in spec.items() if k != "tag"}}
        table[name] = _entry(name, spec, where)
    return table


def emulation_bits() -> dict[str, int]:
    """Working point -> bit the sample emulation writes into ``Jet_btag`` (from the shipped
    table: every working point whose NanoAOD tag is a bit). Bit 0 is the sample's own."""
    bits = {}
    for name, wp in load_working_points().items():
        rule = wp.tag.get("nanoaod")
        if rule is not None and rule.bit is not None:
            bits[name] = rule.bit
    return bits


def check_tag_branch(path: str, tree, layout, rule: TagRule) -> None:
    """Before a run: the file's tree has the branch ``rule`` reads, of a usable type (one-line
    ValueError naming file, branch and job key). ``tree`` is an open uproot TTree."""
    name = rule.branch_name(layout)
    names = {k.split("/")[-1] for k in tree.keys(recursive=True)}
    if name not in names:
        what = f"{rule.key}.branch" if rule.branch is not None else f"{rule.key} (bit {rule.bit})"
        raise ValueError(f"{path}: tree '{layout.tree}' lacks branch '{name}', needed by {what}")
    branch = tree[name] if name in tree else next(tree[k] for k in tree.keys(recursive=True) if k.split("/")[-1] == name)
    typename = str(branch.typename).lower()
    numeric = any(t in typename for t in ("int", "float", "double", "short", "long", "char", "bool"))
    if not numeric or (rule.bit is not None and any(t in typename for t in ("float", "double", "bool"))):
        expected = "an integer bitmask" if rule.bit is not None else "a numeric discriminant"
        raise ValueError(f"{path}: branch '{name}' is {branch.typename}, not {expected} ({rule.key})")
    if rule.bit is not None:
        width = 8 if "char" in typename or "int8" in typename else 16 if "short" in typename or "int16" in typename \
            else 64 if "long" in typename or "int64" in typename else 32
        if rule.bit >= width:
            raise ValueError(f"{path}: branch '{name}' ({branch.typename}) has no bit {rule.bit} ({rule.key})")
    if rule.bit is not None and "://" not in str(path):
        # a generated sample's sidecar lists the bits it wrote (bit 0 is the sample's own)
        sidecar = Path(f"{path}.json")
        if sidecar.exists():
            try:
                bits = json.loads(sidecar.read_text()).get("btag_bits")
            except (OSError, ValueError):
                bits = None
            if isinstance(bits, dict) and rule.bit not in {DEFAULT_TAG_BIT, *bits.values()}:
                raise ValueError(f"{path}: branch '{name}' has no bit {rule.bit} (the sample wrote bits "
                                 f"{sorted({DEFAULT_TAG_BIT, *bits.values()})}; {rule.key})")
    if rule.branch is not None and "bool" in typename:
        raise ValueError(f"{path}: branch '{name}' is {branch.typename}, not a numeric discriminant ({rule.key}.threshold)")
