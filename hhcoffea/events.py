"""The internal event model, and the one place that maps each input layout onto it.

Whatever the file layout (native Delphes or NanoAOD-like flat trees, ``shared/FORMATS.md``),
processors see the same awkward record fields:

- ``jets``: pt, eta, phi, mass, btag (bool, the sample's working point), flavour (5 b, 4 c, 0 light),
  pT-ordered;
- ``genpart``: pt, eta, phi, mass, pdg_id, status, mother (index, -1 for none);
- ``met_pt``, ``met_phi``: one per event (lazy: read only when used);
- ``electrons``, ``muons``: pt, eta, phi, charge;
- ``weight``: the generator weight (float64).

:data:`LAYOUTS` is the mapping: for each layout, the tree name and, for each internal field, the
source branch. :func:`detect_layout` tells layouts apart from branch names; :class:`AutoSchema`
lets coffea's Runner read either (Delphes through coffea's ``DelphesSchema``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import awkward as ak
import numpy as np
from coffea.nanoevents import BaseSchema, DelphesSchema, transforms
from coffea.nanoevents.schemas.base import listarray_form

HIGGS_PDG_ID = 25
BOTTOM_PDG_ID = 5


@dataclass(frozen=True)
class Layout:
    """How one file layout spells the internal model."""

    name: str
    tree: str
    # internal collection -> {internal field: source field}; source fields are relative to the
    # collection in the events record produced by the layout's schema
    collections: dict[str, tuple[str, dict[str, str]]]
    # internal scalar -> (collection or branch, field or None)
    scalars: dict[str, tuple[str, str | None]]
    optional: frozenset[str] = field(default_factory=frozenset)

    def branch(self, collection: str, source_field: str | None) -> str:
        """The on-disk branch name of a source field (for error messages and validation)."""
        if self.name == "delphes":
            return f"{collection}.{source_field}" if source_field else collection
        return f"{collection}_{source_field}" if source_field else collection

    def required_branches(self) -> list[str]:
        names = []
        for internal, (coll, fields) in self.collections.items():
            if internal in self.optional:
                continue
            names.extend(self.branch(coll, f) for f in fields.values())
        for internal, (coll, f) in self.scalars.items():
            if internal in self.optional:
                continue
            names.append(self.branch(coll, f))
        return names


_KINEMATICS = {"pt": "pt", "eta": "eta", "phi": "phi"}

LAYOUTS: dict[str, Layout] = {
    # FORMATS.md layout 2: one counter per collection, one branch per field
    "nanoaod": Layout(
        name="nanoaod",
        tree="Events",
        collections={
            "jets": (
                "Jet",
                {"pt": "pt", "eta": "eta", "phi": "phi", "mass": "mass", "btag": "btag",
                 "flavour": "hadronFlavour"},
            ),
            "genpart": (
                "GenPart",
                {"pt": "pt", "eta": "eta", "phi": "phi", "mass": "mass", "pdg_id": "pdgId",
                 "status": "status", "mother": "genPartIdxMother"},
            ),
            "electrons": ("Electron", {**_KINEMATICS, "charge": "charge"}),
            "muons": ("Muon", {**_KINEMATICS, "charge": "charge"}),
        },
        scalars={"met_pt": ("MET", "pt"), "met_phi": ("MET", "phi"), "weight": ("genWeight", None)},
        optional=frozenset({"genpart"}),
    ),
    # FORMATS.md layout 1: Delphes split branches, read through coffea's DelphesSchema
    "delphes": Layout(
        name="delphes",
        tree="Delphes",
        collections={
            "jets": (
                "Jet",
                {"pt": "PT", "eta": "Eta", "phi": "Phi", "mass": "Mass", "btag": "BTag",
                 "flavour": "Flavor"},
            ),
            "genpart": (
                "Particle",
                {"pt": "PT", "eta": "Eta", "phi": "Phi", "mass": "Mass", "pdg_id": "PID",
                 "status": "Status", "mother": "M1"},
            ),
            "electrons": ("Electron", {"pt": "PT", "eta": "Eta", "phi": "Phi", "charge": "Charge"}),
            "muons": ("Muon", {"pt": "PT", "eta": "Eta", "phi": "Phi", "charge": "Charge"}),
        },
        scalars={"met_pt": ("MissingET", "MET"), "met_phi": ("MissingET", "Phi"),
                 "weight": ("Event", "Weight")},
        optional=frozenset({"genpart"}),
    ),
}


def detect_layout(branch_names) -> Layout | None:
    """The layout whose signature branch is present (``Jet_pt`` or ``Jet.PT``), else None."""
    names = set(branch_names)
    if "Jet_pt" in names or "nJet" in names:
        return LAYOUTS["nanoaod"]
    if any(n in names for n in ("Jet.PT", "Jet/Jet.PT", "Jet_size")):
        return LAYOUTS["delphes"]
    return None


#: fields coffea's DelphesSchema reads from each collection kind we use (its vector aliases)
_DELPHES_SCHEMA_FIELDS = {
    "Jet": ("PT", "Eta", "Phi", "Mass"),
    "Particle": ("PT", "Eta", "Phi", "Mass"),
    "Electron": ("Eta", "Phi"),
    "Muon": ("Eta", "Phi"),
    "MissingET": ("MET", "Eta", "Phi"),
    "Event": (),
}


def _delphes_collections_used(base_form: dict) -> dict:
    """The base form restricted to the collections the event model reads.

    Delphes versions differ in the collections they write (a ``Track`` without ``Mass``, a
    ``Tower`` with ``ET`` but no ``PT``); coffea's DelphesSchema builds every collection it finds
    and fails on such files, so it is given only these. A used collection that lacks a field
    the schema needs is a one-line error naming the branch.
    """
    layout = LAYOUTS["delphes"]
    used = {coll for coll, _ in layout.collections.values()} | {coll for coll, _ in layout.scalars.values()}
    fields, contents = base_form["fields"], base_form["contents"]
    keep = [i for i, k in enumerate(fields) if k.split("/")[0].removesuffix("_size") in used]
    present = {fields[i] for i in keep}
    for coll, needed in _DELPHES_SCHEMA_FIELDS.items():
        if f"{coll}_size" not in present:
            if coll in ("Particle",):  # generator truth is optional
                continue
            raise ValueError(f"Delphes tree lacks the {coll!r} collection (branch '{coll}_size'), which the event model reads")
        for name in needed:
            if f"{coll}/{coll}.{name}" not in present:
                raise ValueError(f"Delphes tree lacks branch '{coll}.{name}', which the event model reads")
    form = dict(base_form)
    form["fields"] = [fields[i] for i in keep]
    form["contents"] = [contents[i] for i in keep]
    return form


class AutoSchema(BaseSchema):
    """coffea schema reading either layout: Delphes via ``DelphesSchema``, flat trees as they are.

    The flat layout keeps coffea's plain ``BaseSchema`` (the collections are zipped in
    :func:`event_model`, which measured faster than NanoAODSchema and needs no event-id branches).
    """

    __dask_capable__ = True

    def __init__(self, base_form, *args, **kwargs):
        fields = base_form["fields"]
        if detect_layout(k.split("/")[-1] for k in fields) is LAYOUTS["delphes"] or "Jet_size" in fields:
            delphes = DelphesSchema(_delphes_collections_used(base_form))
            self._form = delphes._form
        else:
            super().__init__(base_form)
            self._share_counters()

    def _share_counters(self) -> None:
        """Give every jagged branch ``X_f`` the offsets of its counter ``nX``.

        Left alone, each branch's list offsets come from that branch itself, so reading a column
        reads the branch twice (once for its offsets, once for its values); from the tiny
        counter branch, each column is read once (as coffea's NanoAODSchema does).
        """
        fields, contents = self._form["fields"], self._form["contents"]
        by_name = dict(zip(fields, contents))
        for i, (name, form) in enumerate(zip(fields, contents)):
            prefix = name.split("_", 1)[0]
            counter = by_name.get("n" + prefix)
            if "_" in name and counter is not None and form.get("class", "").startswith("ListOffsetArray"):
                contents[i] = listarray_form(form["content"], transforms.counts2offsets_form(counter))

    @classmethod
    def behavior(cls):
        # coffea calls this on the class; Delphes' behaviours include the base NanoEvents ones
        # (events.metadata) and are harmless for the flat layout
        return DelphesSchema.behavior()


def _layout_of(events) -> Layout:
    fields = set(events.fields)
    if "Jet_pt" in fields:
        return LAYOUTS["nanoaod"]
    if "Jet" in fields and "Particle" in fields or "Jet" in fields and "MissingET" in fields:
        return LAYOUTS["delphes"]
    raise ValueError(
        f"events have neither layout: expected 'Jet_pt' (NanoAOD-like) or 'Jet' with 'Jet.PT' "
        f"(Delphes); got fields {sorted(fields)[:12]}"
    )


def _source(events, layout: Layout, coll: str, source_field: str | None):
    if layout.name == "delphes":
        obj = events[coll]
        return obj if source_field is None else obj[source_field]
    return events[coll if source_field is None else f"{coll}_{source_field}"]


def _scalar(events, layout: Layout, internal: str):
    """A per-event value as a (lazy) awkward array."""
    coll, src = layout.scalars[internal]
    value = _source(events, layout, coll, src)
    if value.ndim > 1:  # Delphes stores MET and the event weight as length-1 lists
        value = ak.fill_none(ak.firsts(value, axis=1), 0.0)
    return value


def has_truth(events) -> bool:
    layout = _layout_of(events)
    coll, fields = layout.collections["genpart"]
    if layout.name == "delphes":
        return coll in events.fields
    return f"{coll}_{fields['pdg_id']}" in events.fields


def _selected_entries(offsets: np.ndarray, event_mask: np.ndarray | None, item_mask: np.ndarray | None = None):
    """Flat indices and per-event counts of the entries kept by an event mask (None: all events)
    and an optional per-entry mask; everything stays in numpy."""
    n = len(offsets) - 1
    event_mask = np.ones(n, dtype=bool) if event_mask is None else event_mask
    keep = np.repeat(event_mask, np.diff(offsets))
    if item_mask is not None:
        keep &= item_mask
    running = np.concatenate([[0], np.cumsum(keep, dtype=np.int64)])
    counts = (running[offsets[1:]] - running[offsets[:-1]])[event_mask]
    return np.flatnonzero(keep), counts


class EventModel:
    """The internal model of one chunk; collections are built on first use, so a lazily read
    file reads only the branches a processor touches."""

    def __init__(self, events, *, with_truth: bool = True):
        self._events = events
        self.layout = _layout_of(events)
        self.has_truth = with_truth and has_truth(events)
        self._offsets: dict[str, np.ndarray] = {}
        self._columns: dict[tuple[str, str], np.ndarray] = {}

    @functools.cached_property
    def jets(self) -> ak.Array:
        """All jets: pt, eta, phi, mass, btag (bool), flavour (5, 4, 0), pT-ordered."""
        return self.jets_of(None)

    def jets_of(self, mask: np.ndarray | None, jet_mask: np.ndarray | None = None,
                pt_scale: float = 1.0) -> ak.Array:
        """The jets of the events in ``mask`` (all if None), in the model's form.

        ``jet_mask`` (flat, one entry per jet of the chunk) keeps only some jets, e.g. those
        passing the object selection; ``pt_scale`` multiplies pT and mass (a jet-energy-scale
        variation). Everything happens on flat numpy columns, so a processor that preselects
        builds jagged records only for the few events and jets it keeps.
        """
        return self.jets_at(*self.jet_entries(mask, jet_mask), pt_scale=pt_scale)

    def jet_entries(self, mask: np.ndarray | None, jet_mask: np.ndarray | None = None):
        """Flat file indices of the kept jets, pT-ordered within each event, and per-event counts.

        Two selections of the same events give comparable indices: a jet's index says which
        jet of the file it is, whichever subset it was selected into.
        """
        take, counts = _selected_entries(self.jet_offsets, mask, jet_mask)
        pt = self.jet_column("pt")[take]
        # the model promises pT order; most files are ordered already, so check before sorting
        descending = pt[1:] <= pt[:-1]
        starts = np.cumsum(counts)[:-1]
        boundaries = starts[(starts > 0) & (starts < len(pt))] - 1
        descending[boundaries] = True  # a pair across two events says nothing about order
        if not descending.all():
            event = np.repeat(np.arange(len(counts)), counts)
            take = take[np.lexsort((-pt, event))]  # stable: equal pT keeps file order
        return take, counts

    def jets_at(self, take: np.ndarray, counts: np.ndarray, pt_scale: float = 1.0) -> ak.Array:
        """Jets from :meth:`jet_entries` output, as a jagged record array."""
        pt = self.jet_column("pt")[take]
        mass = self.jet_column("mass")[take]
        if pt_scale != 1.0:
            pt, mass = pt * pt_scale, mass * pt_scale
        flavour = np.abs(self.jet_column("flavour")[take].astype(np.int64))
        flat = {
            "pt": pt, "eta": self.jet_column("eta")[take], "phi": self.jet_column("phi")[take], "mass": mass,
            "btag": self.jet_column("btag")[take],
            "flavour": np.where((flavour == 5) | (flavour == 4), flavour, 0),
        }
        return ak.unflatten(ak.zip(flat), counts)

    @functools.cached_property
    def finite_jets(self) -> np.ndarray:
        """Flat bool per jet: pT, eta, phi and mass are all finite (a corrupt basket or a failed
        smearing upstream gives NaN or inf)."""
        ok = np.ones(len(self.jet_column("pt")), dtype=bool)
        for name in ("pt", "eta", "phi", "mass"):
            ok &= np.isfinite(self.jet_column(name))
        return ok

    @functools.cached_property
    def finite_events(self) -> np.ndarray:
        """Per event: the weight and every jet's kinematics are finite. Events that fail are
        excluded (and counted) rather than repaired: a jet that cannot be measured cannot be
        dropped without biasing the event."""
        bad = np.concatenate([[0], np.cumsum(~self.finite_jets, dtype=np.int64)])
        offsets = self.jet_offsets
        return (bad[offsets[1:]] == bad[offsets[:-1]]) & np.isfinite(self.weight)

    def offsets(self, internal: str, field: str | None = None) -> np.ndarray:
        """Offsets ``(n + 1,)`` of a collection's flat columns (counted from ``field``, by default
        the first of the mapping: any branch of the collection will do)."""
        if internal not in self._offsets:
            coll, fields = self.layout.collections[internal]
            source_field = fields[field] if field else next(iter(fields.values()))
            counts = ak.to_numpy(ak.num(_source(self._events, self.layout, coll, source_field), axis=1))
            offsets = np.zeros(len(counts) + 1, dtype=np.int64)
            np.cumsum(counts, out=offsets[1:])
            self._offsets[internal] = offsets
        return self._offsets[internal]

    def column(self, internal: str, field: str) -> np.ndarray:
        """One field of a collection, all events, as a flat numpy array in file order."""
        key = (internal, field)
        if key not in self._columns:
            coll, fields = self.layout.collections[internal]
            source = _source(self._events, self.layout, coll, fields[field])
            self._columns[key] = self._content(source, self.offsets(internal))
        return self._columns[key]

    @staticmethod
    def _content(source: ak.Array, offsets: np.ndarray) -> np.ndarray:
        """The flat values of a jagged branch. Reading the list content directly materializes
        only the data buffer: ``ak.flatten`` would also load this branch's own offsets, which
        (lazily read) costs a second read of the branch."""
        layout = source.layout
        content = getattr(layout, "content", None)
        if content is not None and isinstance(content, ak.contents.NumpyArray) and len(content) == offsets[-1]:
            return ak.to_numpy(ak.Array(content))
        return ak.to_numpy(ak.flatten(source, axis=1))

    def collection(self, internal: str, mask: np.ndarray | None = None, fields=None) -> ak.Array:
        """A collection (internal field names) of the events in ``mask``, built from flat columns.

        Building from numpy avoids zipping lazily read branches (whose per-branch offsets
        awkward would compare) and touches only the selected events' entries.
        """
        fields = fields or self.layout.collections[internal][1]
        offsets = self.offsets(internal, next(iter(fields)))
        if mask is None:
            flat = {name: self.column(internal, name) for name in fields}
            return ak.unflatten(ak.zip(flat), np.diff(offsets))
        take, counts = _selected_entries(offsets, mask)
        return ak.unflatten(ak.zip({name: self.column(internal, name)[take] for name in fields}), counts)

    def jet_column(self, field: str) -> np.ndarray:
        """One jet field of all events as a flat numpy array (file order; ``btag`` as bool)."""
        if field != "btag":
            return self.column("jets", field)
        if ("jets", "btag_bool") not in self._columns:
            # Delphes' BTag holds bit flags (bit 0 = the card's working point); flat files hold 0/1
            self._columns[("jets", "btag_bool")] = (self.column("jets", "btag") & 1) != 0
        return self._columns[("jets", "btag_bool")]

    @property
    def jet_offsets(self) -> np.ndarray:
        return self.offsets("jets")

    @functools.cached_property
    def genpart(self) -> ak.Array | None:
        return self.collection("genpart") if self.has_truth else None

    def genpart_of(self, mask: np.ndarray, fields=None) -> ak.Array | None:
        """Generator particles of the events in ``mask`` (None without truth); ``fields``
        limits what is read (e.g. what truth matching needs)."""
        return self.collection("genpart", mask, fields) if self.has_truth else None

    @functools.cached_property
    def electrons(self) -> ak.Array:
        return self.collection("electrons")

    @functools.cached_property
    def muons(self) -> ak.Array:
        return self.collection("muons")

    @functools.cached_property
    def met_pt(self) -> ak.Array:
        return _scalar(self._events, self.layout, "met_pt")

    @functools.cached_property
    def met_phi(self) -> ak.Array:
        return _scalar(self._events, self.layout, "met_phi")

    @functools.cached_property
    def weight(self) -> np.ndarray:
        return ak.to_numpy(_scalar(self._events, self.layout, "weight")).astype(np.float64)

    def __len__(self) -> int:
        return len(self._events)


def event_model(events, *, with_truth: bool = True) -> EventModel:
    """Map coffea NanoEvents of either layout onto the internal model."""
    return EventModel(events, with_truth=with_truth)


def higgs_bquarks(genpart: ak.Array) -> ak.Array:
    """b quarks whose mother is a Higgs boson, with ``higgs_id`` = rank of that Higgs (0, 1, 2).

    FORMATS.md: the b quarks from a Higgs are the entries with |pdgId| = 5 whose mother has
    pdgId 25. Computed on flat numpy arrays (one pass, no per-event work). Needs ``pdg_id`` and
    ``mother``; carries whichever of pt, eta, phi, mass ``genpart`` has.
    """
    counts = ak.to_numpy(ak.num(genpart.pdg_id, axis=1))
    starts = np.zeros(len(counts), dtype=np.int64)
    np.cumsum(counts[:-1], out=starts[1:])
    pdg = np.abs(ak.to_numpy(ak.flatten(genpart.pdg_id)).astype(np.int64))
    mother = ak.to_numpy(ak.flatten(genpart.mother)).astype(np.int64)
    event = np.repeat(np.arange(len(counts)), counts)
    valid = (mother >= 0) & (mother < counts[event])
    mother_global = np.where(valid, starts[event] + mother, 0)
    mother_pdg = np.where(valid, pdg[mother_global] if pdg.size else 0, 0)
    is_b = (pdg == BOTTOM_PDG_ID) & (mother_pdg == HIGGS_PDG_ID)
    # rank of each b quark's Higgs among the event's Higgs parents (of b quarks), in O(n):
    # copies of a Higgs without b daughters do not count
    is_parent = np.zeros(len(pdg), dtype=bool)
    is_parent[mother_global[is_b]] = True
    running = np.cumsum(is_parent)
    before_event = np.where(starts > 0, running[np.maximum(starts - 1, 0)], 0) if len(pdg) else starts
    b_event = event[is_b]
    higgs_id = running[mother_global[is_b]] - 1 - before_event[b_event]
    b_counts = np.bincount(b_event, minlength=len(counts))

    def pick(field):
        return ak.unflatten(ak.to_numpy(ak.flatten(genpart[field]))[is_b], b_counts)

    kinematics = {f: pick(f) for f in ("pt", "eta", "phi", "mass") if f in genpart.fields}
    return ak.zip({**kinematics, "higgs_id": ak.unflatten(higgs_id, b_counts)})
