"""Inputs and the event model: the layouts hhcoffea reads, the coffea schema that reads them,
input checks, and the internal model every processor sees (independent of the file layout).
"""

from .io import FileInfo, InputError, PreloadedSource, events_from_arrays, inspect_file
from .layouts import BOTTOM_PDG_ID, HIGGS_PDG_ID, LAYOUTS, Layout, detect_layout
from .model import (
    EventModel,
    event_model,
    has_truth,
    higgs_bquarks,
    long_lived_objects_frozen,
    release_chunk_garbage,
)
from .schema import AutoSchema

__all__ = [
    "AutoSchema", "BOTTOM_PDG_ID", "EventModel", "FileInfo", "HIGGS_PDG_ID", "InputError", "LAYOUTS", "Layout",
    "PreloadedSource", "detect_layout", "event_model", "events_from_arrays", "has_truth", "higgs_bquarks",
    "inspect_file", "long_lived_objects_frozen", "release_chunk_garbage",
]
