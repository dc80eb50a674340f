"""Input checks: which layout a file has, whether it has what we need, how many events.

Every problem is one line naming the file, the tree or branch, and what was expected
(:class:`InputError`). The runner checks all inputs before processing and counts what it skips.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import awkward as ak
import uproot

from .layouts import LAYOUTS, Layout, detect_layout

__all__ = ["FileInfo", "InputError", "PreloadedSource", "events_from_arrays", "inspect_file"]


class InputError(ValueError):
    """A one-line, human-readable problem with an input file."""


@dataclass(frozen=True)
class FileInfo:
    path: str
    layout: str
    tree: str
    n_events: int
    has_truth: bool
    uuid: str = ""  # the ROOT file's UUID (coffea's ``fileuuid`` of its chunks)

    def as_dict(self) -> dict:
        return asdict(self)


def _branch_names(tree) -> set[str]:
    # Delphes' split branches appear as "Jet/Jet.PT"; keep both spellings
    names = set()
    for key in tree.keys(recursive=True):
        names.add(key)
        names.add(key.split("/")[-1])
    return names


def inspect_file(path: str | Path, tag_check=None) -> FileInfo:
    """Open ``path``, detect its layout, check the branches the event model needs.

    ``tag_check(path, tree, layout)``, if given, checks how jets' tags will be read (raising
    ValueError with one line) and replaces the check of the layout's own tag branch (a CMS
    NanoAOD file has ``Jet_btagDeepFlavB``, no ``Jet_btag``).
    """
    path = str(path)
    if not Path(path).exists() and "://" not in path:
        raise InputError(f"{path}: no such file")
    try:
        handle = uproot.open(path)
    except Exception as err:
        reason = " ".join(str(err).split())  # one line, whatever uproot printed
        raise InputError(f"{path}: not a readable ROOT file ({type(err).__name__}: {reason})") from None
    with handle:
        trees = {name.split(";")[0] for name, cls in handle.classnames().items() if cls == "TTree"}
        candidates = [LAYOUTS[k] for k in LAYOUTS if LAYOUTS[k].tree in trees]
        if not candidates:
            raise InputError(
                f"{path}: neither input layout found: expected a TTree 'Events' (NanoAOD-like) or "
                f"'Delphes' (native Delphes), found {sorted(trees) or 'no trees'}"
            )
        layout: Layout = candidates[0]
        tree = handle[layout.tree]
        names = _branch_names(tree)
        detected = detect_layout(names)
        if detected is None or detected.name != layout.name:
            raise InputError(
                f"{path}: tree '{layout.tree}' has no jet branches of the {layout.name} layout "
                f"(expected '{layout.branch('Jet', layout.collections['jets'][1]['pt'])}')"
            )
        skip = set()
        if tag_check is not None:
            coll, fields = layout.collections["jets"]
            skip.add(layout.branch(coll, fields["btag"]))
        missing = [b for b in layout.required_branches() if b not in names and b not in skip]
        if missing:
            raise InputError(
                f"{path}: tree '{layout.tree}' lacks branch '{missing[0]}'"
                + (f" (and {len(missing) - 1} more: {', '.join(missing[1:4])})" if len(missing) > 1 else "")
                + f", needed by the {layout.name} layout (see FORMATS.md)"
            )
        if tag_check is not None:  # a ValueError here is the job's mistake, not the file's: not skipped
            tag_check(path, tree, layout)
        coll, fields = layout.collections["genpart"]
        truth = layout.branch(coll, fields["pdg_id"]) in names
        return FileInfo(path, layout.name, layout.tree, int(tree.num_entries), truth, str(handle.file.uuid))


class PreloadedSource(dict):
    """Branch name -> array, with the metadata coffea's ``from_preloaded`` asks for."""

    def __init__(self, arrays: dict, name: str = "preloaded", tree: str = "Events"):
        # uproot gives every branch its title as __doc__; coffea's schemas read it
        super().__init__({k: ak.with_parameter(ak.Array(v), "__doc__", k) for k, v in arrays.items()})
        lengths = {len(v) for v in arrays.values()}
        if len(lengths) != 1:
            raise InputError(f"{name}: arrays have different numbers of events: {sorted(lengths)}")
        self.metadata = {"uuid": name, "num_rows": lengths.pop(), "object_path": tree}


def events_from_arrays(arrays: dict, metadata: dict | None = None, name: str = "preloaded"):
    """NanoEvents from in-memory arrays named as in either layout (e.g. Delphes' ``Jet/Jet.PT``
    with ``Jet_size``), read through coffea with :class:`~hhcoffea.events.AutoSchema`."""
    from coffea.nanoevents import NanoEventsFactory

    from .schema import AutoSchema

    layout = detect_layout(arrays)
    if layout is None:
        raise InputError(f"{name}: neither layout: expected 'Jet_pt' (NanoAOD-like) or 'Jet/Jet.PT' (Delphes)")
    source = PreloadedSource(arrays, name, layout.tree)
    return NanoEventsFactory.from_preloaded(source, schemaclass=AutoSchema, metadata=metadata or {}).events()
