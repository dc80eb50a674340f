"""Job files: YAML describing samples, datasets, pairers, histograms, systematics, executor.

A job file (see ``jobs/demo.yaml``) has these keys; everything but ``datasets`` or ``samples``
is optional:

``name``, ``output`` (folder, relative to the job file's folder), ``luminosity`` (fb^-1),
``samples`` (``directory``, ``seed``, ``generate: {name: {process, n_events, m_x, kappa_lambda,
working_point}}``: made with ``hhcoffea generate`` when missing), ``datasets`` (``{name: {files:
[...], metadata: {process, xsec_fb, n_generated, ...}}}``), ``pairers`` (``{label: {plugin: name,
options: {...}}}``; ``plugin`` defaults to the label), ``histograms`` (``{name: {bins: [n, lo, hi]
or edges, systematics: [variation, ...]}}``), ``systematics`` (``{name: {type:
jet_energy_scale, size: 0.02}}``), ``selection`` (``jet_pt_min``, ``jet_eta_max``),
``executor`` (``name: iterative|futures|dask``, ``workers``, ``chunksize``, ``address`` of a dask
scheduler, ``checkpoint`` folder to resume from), ``quick_chunks`` (chunks per dataset in quick-test
mode), ``on_bad_file`` (``skip`` or ``fail``), ``normalise`` (``generated``: weights divide by
the dataset's ``n_generated``; ``processed``: by the events the run read), ``statistics`` (read by ``hhcoffea limits``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

EXECUTORS = ("iterative", "futures", "dask")
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
    "executor": {"name": "iterative", "workers": 2, "chunksize": 100_000, "address": None, "checkpoint": None},
    "quick_chunks": 2,
    "on_bad_file": "skip",
    "normalise": "generated",
    "statistics": None,
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


def load_job(path: str | Path, overrides: dict | None = None) -> Job:
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
    unknown = set(raw) - set(DEFAULTS)
    if unknown:
        raise JobError(f"{path}: unknown key(s) {sorted(unknown)}; known: {sorted(DEFAULTS)}")
    config = copy.deepcopy(DEFAULTS)
    for key, value in [*raw.items(), *(overrides or {}).items()]:
        if key == "executor":  # merged, so a job or an override may set only some of its keys
            config["executor"].update(value or {})
        else:
            config[key] = value
    name = config["executor"]["name"]
    if name not in EXECUTORS:
        raise JobError(f"{path}: executor.name must be one of {EXECUTORS}, got {name!r}")
    if not config["datasets"] and not config["samples"]:
        raise JobError(f"{path}: no 'datasets' and no 'samples': nothing to run on")
    if config["normalise"] not in ("generated", "processed"):
        raise JobError(f"{path}: normalise must be 'generated' or 'processed', got {config['normalise']!r}")
    if config["on_bad_file"] not in ("skip", "fail"):
        raise JobError(f"{path}: on_bad_file must be 'skip' or 'fail', got {config['on_bad_file']!r}")
    pairers = config["pairers"]
    if isinstance(pairers, list):
        config["pairers"] = {p: {} for p in pairers}
    return Job(path=path, text=text, config=config)
