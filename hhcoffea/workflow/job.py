"""Job files: YAML describing samples, datasets, pairers, histograms, systematics, executor.

Every key, its type, default and meaning is defined once, in :mod:`.schema` (one pydantic model
per section); :func:`load_job` validates a file against it before anything runs, and the README's
table is rendered from it (``hhcoffea check --schema``). ``DEFAULTS`` lists the sections and
their defaults (a test keeps it equal to the schema).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["DEFAULTS", "EXECUTORS", "Job", "JobError", "load_job"]


EXECUTORS = ("iterative", "futures", "dask", "dask-awkward")
DEFAULTS: dict[str, Any] = {
    "name": "job",
    "output": "output",
    "luminosity": 300.0,
    "samples": None,
    "datasets": {},
    "pairers": {"min_dr": {}},
    "histograms": {},
    "systematics": {},
    "selection": {},
    "executor": {"name": "iterative", "workers": 2, "chunksize": 100_000, "address": None, "cluster": None,
                 "checkpoint": None},
    "quick_chunks": 2,
    "on_bad_file": "skip",
    "normalise": "generated",
    "scorers": {},  # label -> {plugin, options} (hhcoffea.scoring)
    "selections": {},  # name -> {pairer, scorer, threshold, ...} (hhcoffea.scoring.selections)
    "statistics": None,
    "export": None,  # hhcoffea export: {spanet: {...}} (hhcoffea.workflow.spanet_export)
    "btagging": None,  # hhcoffea.corrections.btagging.config (per dataset: datasets.NAME.btagging)
}


class JobError(ValueError):
    """A one-line problem with a job file."""


@dataclass
class Job:
    path: Path
    text: str
    config: dict

    @property
    def base(self) -> Path:
        return self.path.parent

    def resolve(self, relative: str | Path) -> Path:
        p = Path(relative).expanduser()
        return (p if p.is_absolute() else self.base / p).resolve()

    @property
    def output(self) -> Path:
        return self.resolve(self.config["output"])


def read_job_file(path: str | Path) -> tuple[str, dict]:
    """The job file's text and its YAML mapping, or a one-line :class:`JobError`."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise JobError(f"{path}: cannot read job file ({err.strerror})") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise JobError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise JobError(f"{path}: a job file is a mapping of keys, got {type(raw).__name__}")
    return text, raw


def merge_overrides(raw: dict, overrides: dict | None) -> dict:
    """``raw`` with command-line overrides; ``executor`` is merged key by key."""
    merged = copy.deepcopy(raw)
    for key, value in (overrides or {}).items():
        if key == "executor" and isinstance(merged.get("executor"), dict):
            merged["executor"] = {**merged["executor"], **(value or {})}
        else:
            merged[key] = value
    return merged


def load_job(path: str | Path, overrides: dict | None = None, *, plugins: bool = True) -> Job:
    """Read and validate a job file (:mod:`.schema`) before anything runs.

    Raises :class:`JobError` with one line per problem, each ``path: key.path: got ...; expected ...``.
    ``plugins``: also construct every pairer with its options.
    """
    from .schema import JobSchemaError, normalised_config, validate_job

    path = Path(path)
    text, raw = read_job_file(path)
    try:
        model = validate_job(merge_overrides(raw, overrides), plugins=plugins)
    except JobSchemaError as err:
        raise JobError("\n".join(f"{path}: {line}" for line in err.lines)) from None
    return Job(path=path, text=text, config=normalised_config(model))
