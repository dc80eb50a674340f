"""The internal event model: whatever the file layout, processors see the same fields.

- ``jets``: pt, eta, phi, mass, btag (bool: bit 0 of the tag bitmask, the sample's working point,
  unless a tag rule says otherwise), flavour (5 b, 4 c, 0 light), pT-ordered;
- ``genpart``: pt, eta, phi, mass, pdg_id, status, mother (index, -1 for none);
- ``met_pt``, ``met_phi``: one per event (lazy: read only when used);
- ``electrons``, ``muons``: pt, eta, phi, charge;
- ``weight``: the generator weight (float64).

Collections are built on first use from flat numpy columns, so a lazily read file reads only the
branches a processor touches.
"""

from __future__ import annotations

import contextlib
import functools
import gc

import awkward as ak
import numpy as np

from .layouts import BOTTOM_PDG_ID, HIGGS_PDG_ID, LAYOUTS, Layout

__all__ = ["EventModel", "event_model", "has_truth", "higgs_bquarks", "long_lived_objects_frozen", "release_chunk_garbage"]

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

    def __init__(self, events, *, with_truth: bool = True, tag=None):
        self._events = events
        # how ``btag`` is read: None = bit 0 of the layout's tag bitmask; otherwise an object
        # with ``read(model) -> flat bool per jet`` (hhcoffea.corrections.btagging.TagRule)
        self.tag = tag
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
            if self.tag is not None:
                tagged = np.asarray(self.tag.read(self), dtype=bool)
            else:
                # BTag / Jet_btag hold bit flags (bit 0 = the card's or sample's working point)
                tagged = (self.column("jets", "btag") & 1) != 0
            self._columns[("jets", "btag_bool")] = tagged
        return self._columns[("jets", "btag_bool")]

    def jet_branch(self, source_field: str) -> np.ndarray:
        """Any jet branch of the file by its name in the layout (``btagDeepFlavB`` reads
        ``Jet_btagDeepFlavB`` or ``Jet.btagDeepFlavB``), flat in file order. KeyError if absent."""
        key = ("jets:branch", source_field)
        if key not in self._columns:
            coll, _ = self.layout.collections["jets"]
            try:
                source = _source(self._events, self.layout, coll, source_field)
            except (AttributeError, KeyError, ValueError) as err:
                raise KeyError(self.layout.branch(coll, source_field)) from err
            self._columns[key] = self._content(source, self.jet_offsets)
        return self._columns[key]

    @property
    def metadata(self) -> dict:
        """The chunk's coffea metadata (``filename``, ``entrystart``, ``dataset``, ...)."""
        return dict(getattr(self._events, "metadata", None) or {})

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


def event_model(events, *, with_truth: bool = True, tag=None) -> EventModel:
    """Map coffea NanoEvents of either layout onto the internal model (``tag``: how jets'
    ``btag`` is read, see :class:`EventModel`)."""
    return EventModel(events, with_truth=with_truth, tag=tag)


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


def release_chunk_garbage() -> None:
    """Free the reference cycles that earlier chunks' NanoEvents left behind, where that is cheap.

    coffea's NanoEvents hold reference cycles, which Python frees only at a full collection; over a
    long run they pile up (peak memory 1.47x at 10x the events, iterative executor). Once the
    long-lived objects are frozen (:func:`long_lived_objects_frozen`), a full collection costs
    about 3 ms instead of about 90 ms, so processors run one per chunk; in a process where nothing
    is frozen it leaves the interpreter's own schedule alone.
    """
    if gc.get_freeze_count():
        gc.collect()


@contextlib.contextmanager
def long_lived_objects_frozen():
    """Move everything alive now (modules, caches, the job) out of the collector's sight for the
    duration of a run, so that :func:`release_chunk_garbage` is cheap; forked workers inherit it."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
