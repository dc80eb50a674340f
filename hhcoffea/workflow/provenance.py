"""Provenance of a run's output folder: the job as run (and resolved), package versions, the git
revision, and the input files with their event counts, skipped files and excluded events."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata as importlib_metadata
from pathlib import Path

__all__ = ["PROVENANCE_PACKAGES", "git_revision", "package_versions", "write_provenance"]

PROVENANCE_PACKAGES = (
    "hhcoffea", "coffea", "awkward", "uproot", "hist", "numpy", "dask", "distributed",
    "dask-awkward", "vector", "pyhf", "correctionlib", "torch", "mplhep", "matplotlib", "scipy",
)


def package_versions() -> dict:
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PROVENANCE_PACKAGES:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_revision() -> dict:
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return {"revision": None, "dirty": None}
    if rev.returncode != 0:
        return {"revision": None, "dirty": None}
    return {"revision": rev.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def write_provenance(job, result, outdir: Path) -> None:
    prov = outdir / "provenance"
    prov.mkdir(parents=True, exist_ok=True)
    (prov / "job.yaml").write_text(job.text)
    import yaml

    (prov / "job.resolved.yaml").write_text(yaml.safe_dump(job.config, sort_keys=False))
    (prov / "versions.json").write_text(json.dumps(package_versions(), indent=2))
    (prov / "git.json").write_text(json.dumps(git_revision(), indent=2))
    inputs = {
        "files": [f.as_dict() for f in result.fileset.files],
        "skipped_files": result.fileset.skipped,
        "datasets": {name: entry["metadata"] for name, entry in result.fileset.coffea.items()},
        "events_processed": {k: int(v) for k, v in result.output["events_in"].items()},
        "events_excluded": result.output.get("excluded", {}),
        "normalisation": result.output.get("normalisation", {}),
        "quick": result.quick,
        "command": sys.argv,
    }
    (prov / "inputs.json").write_text(json.dumps(inputs, indent=2, default=str))
