"""Per-chunk checkpoints that a changed job never reuses.

A chunk's saved output is keyed by everything that changes it: every job section except those
that only say where and how to run (name, output, samples, datasets' file lists, executor,
quick_chunks, on_bad_file, normalise, statistics) -- so pairers and their options, binning,
systematics, selection, luminosity, b-tagging and any section added later are in the key by
default -- plus the dataset's metadata (weights), the package versions of hhcoffea, coffea
and every plugin the job uses, the file's UUID, tree and entry range. Files are written to a
temporary name and renamed, so a killed run never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
from pathlib import Path

from coffea.processor import CheckpointerABC

__all__ = ["RUN_ONLY_SECTIONS", "JobCheckpointer", "job_fingerprint"]

#: job sections that do not change a chunk's output (the rest are in the checkpoint key)
RUN_ONLY_SECTIONS = ("name", "output", "samples", "datasets", "executor", "quick_chunks", "on_bad_file",
                     "normalise", "statistics")


def _versions(config: dict) -> dict:
    from importlib import metadata

    from .. import registry

    versions = {}
    for dist in ("hhcoffea", "coffea", "awkward", "hist"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    for kind in ("pairers", "scorers"):
        for label, spec in (config.get(kind) or {}).items():
            name = (spec or {}).get("plugin") or label
            info = registry.plugins(kind.rstrip("s")).get(name)
            if info is not None:
                try:
                    version = metadata.version(info.distribution)
                except (metadata.PackageNotFoundError, ValueError):
                    version = None
                versions[f"{kind}.{name}"] = f"{info.target} ({info.distribution} {version})"
    return versions


def job_fingerprint(config: dict) -> str:
    """A hash of everything in a normalised job config that changes a chunk's output."""
    physics = {k: v for k, v in config.items() if k not in RUN_ONLY_SECTIONS}
    blob = json.dumps({"job": physics, "versions": _versions(config)}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


class JobCheckpointer(CheckpointerABC):
    """Saves each chunk's output under ``<directory>/<fingerprint>/<dataset>/<file uuid>/...``.

    A loaded chunk is marked ``run.chunks_reused`` (and its events ``run.events_reused``); a
    computed one ``run.chunks_computed``, so the summary can say what this run did itself.
    """

    def __init__(self, directory: str | Path, fingerprint: str):
        self.directory = Path(directory)
        self.fingerprint = fingerprint

    def filepath(self, metadata, processor_instance=None) -> Path:
        # the dataset's metadata changes the weights: part of the key
        meta = {k: v for k, v in metadata.items() if k not in ("filename", "entrystart", "entrystop", "fileuuid", "treename")}
        meta_key = hashlib.sha256(json.dumps(meta, sort_keys=True, default=repr).encode()).hexdigest()[:16]
        return (self.directory / self.fingerprint[:24] / str(metadata["dataset"]) / f"{metadata['fileuuid']}-{meta_key}"
                / str(metadata["treename"]) / f"{metadata['entrystart']}-{metadata['entrystop']}.pkl")

    def load(self, metadata, processor_instance):
        path = self.filepath(metadata)
        try:
            with open(path, "rb") as f:
                out = pickle.load(f)
        except FileNotFoundError:
            return None
        except Exception:  # noqa: BLE001 - unreadable checkpoint: compute the chunk again
            return None
        events = int(sum(out["out"].get("events_in", {}).values()))
        out["out"]["run"] = {"chunks_reused": 1, "chunks_computed": 0, "events_reused": events}
        return out

    def save(self, output, metadata, processor_instance) -> None:
        path = self.filepath(metadata)
        output["out"]["run"] = {"chunks_reused": 0, "chunks_computed": 1, "events_reused": 0}
        path.parent.mkdir(parents=True, exist_ok=True)
        # not *.pkl until complete: a run killed mid-write leaves no file that looks like a checkpoint
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pkl.partial")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(output, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, path)  # atomic: a reader sees the whole file or none
        except BaseException:
            with __import__("contextlib").suppress(OSError):
                os.unlink(tmp)
            raise
