"""Writing an output folder as a whole: into a temporary sibling folder, then renamed into place.

A run killed while writing leaves the previous output as it was (plus a ``.<name>.partial-*``
folder, removed by the next run), never a folder that mixes two runs or holds a truncated file.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

__all__ = ["OUTPUT_ENTRIES", "atomic_folder"]

#: what a run writes at the top of its output folder; anything else there (a checkpoint folder,
#: a user's notes) is carried over into the new folder
OUTPUT_ENTRIES = ("histograms.pkl", "hists", "histograms.root", "cutflow.json", "cutflow.md",
                  "pairing_efficiency.json", "pairing_efficiency.md", "plots", "metadata.json", "provenance",
                  "statistics", "selections.json")


@contextlib.contextmanager
def atomic_folder(final: Path, keep_inside: tuple[Path, ...] = ()):
    """Yield a temporary folder to write into; on success it replaces ``final``.

    ``keep_inside``: paths that must not move (the job file): if one lies inside ``final``, the
    folder is written in place instead.
    """
    final = Path(final).resolve()
    if any(final == p or final in Path(p).resolve().parents for p in keep_inside):
        final.mkdir(parents=True, exist_ok=True)
        yield final
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    for stale in final.parent.glob(f".{final.name}.partial-*"):
        shutil.rmtree(stale, ignore_errors=True)  # left by a killed run
    tmp = final.parent / f".{final.name}.partial-{os.getpid()}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.previous-{os.getpid()}"
    if final.exists():
        for entry in final.iterdir():
            if entry.name not in OUTPUT_ENTRIES and not (tmp / entry.name).exists():
                os.replace(entry, tmp / entry.name)
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
