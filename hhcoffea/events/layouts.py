"""The file layouts hhcoffea reads (``shared/FORMATS.md``) and the one mapping of each onto the
internal event model: for each layout, the tree name and, for each internal field, the source
branch. :func:`detect_layout` tells layouts apart from branch names.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BOTTOM_PDG_ID", "HIGGS_PDG_ID", "LAYOUTS", "Layout", "detect_layout"]

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
