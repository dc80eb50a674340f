"""coffea schema that reads either layout: native Delphes through coffea's ``DelphesSchema``
(restricted to the collections the model uses), flat NanoAOD-like trees through ``BaseSchema``.
"""

from __future__ import annotations

from coffea.nanoevents import BaseSchema, DelphesSchema, transforms
from coffea.nanoevents.schemas.base import listarray_form

from .layouts import LAYOUTS, detect_layout

__all__ = ["AutoSchema"]

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
    optional = {layout.collections[internal][0] for internal in layout.optional}  # generator truth
    for coll, needed in _DELPHES_SCHEMA_FIELDS.items():
        if f"{coll}_size" not in present:
            if coll in optional:
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
