"""``hhcoffea export spanet``: a job's datasets through coffea's Runner (same executors and
chunking as ``hhcoffea run``) into SPANet training files.

The job's ``export: {spanet: {...}}`` section (all keys optional)::

    export:
      spanet:
        n_jets: 10               # jets per event (the leading ones by pT, all with pT >= 20 GeV)
        four_tag: true           # only four-tag events (the seeds' training samples)
        test_fraction: 0.1       # share of events written to testing.h5 instead of training.h5
        seed: 1                  # sampling, shuffling, background global values
        global: [kappa_lambda]   # metadata values as GLOBAL inputs (backgrounds draw from background_values)
        background_values: {kappa_lambda: [-5, -3, -1, 1, 2, 3, 5, 7, 9, 12]}
        datasets:                # which datasets (default: all), and how to mix them
          X500: {fraction: 0.5, weight: 1.0}
          qcd:  {fraction: 0.02, label: 0}

Writes ``training.h5``, ``testing.h5``, ``event.yaml`` (SPANet's event file) and
``export.json`` (events read, selected, dropped as ambiguous or with a shared jet, written).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from coffea import processor

from .. import constants as c
from ..events import AutoSchema
from ..ml.spanet.dataset import SpanetExportProcessor, collect, write_h5
from ..ml.spanet.event_info import default_event_info
from .job import Job, JobError
from .runner import build_fileset, ensure_samples, executor_for

__all__ = ["EXPORT_KEYS", "run_spanet_export"]

EXPORT_KEYS = ("n_jets", "four_tag", "test_fraction", "seed", "global", "background_values", "datasets",
               "n_higgs", "classification")


def run_spanet_export(job: Job, output: str | Path, *, status: bool = True, console=None, quick: bool = False) -> dict:
    """Run the export; returns the ``export.json`` content."""
    spec = ((job.config.get("export") or {}).get("spanet")) or {}
    unknown = set(spec) - set(EXPORT_KEYS)
    if unknown:
        raise JobError(f"{job.path}: export.spanet has unknown key(s) {sorted(unknown)}; known: {list(EXPORT_KEYS)}")
    globals_ = tuple(spec.get("global") or ())
    background = spec.get("background_values") or {"kappa_lambda": list(c.KAPPA_LAMBDA_TRAINING)}
    info = default_event_info(int(spec.get("n_higgs", 2)), global_features=globals_,
                              classification=bool(spec.get("classification", True)))
    datasets = dict(ensure_samples(job, console))
    datasets.update(job.config.get("datasets") or {})
    wanted = spec.get("datasets")
    if wanted:
        missing = [d for d in wanted if d not in datasets]
        if missing:
            raise JobError(f"{job.path}: export.spanet.datasets names {missing}, not datasets of the job ({sorted(datasets)})")
        datasets = {name: datasets[name] for name in wanted}
    fileset = build_fileset(job, datasets)
    proc = SpanetExportProcessor(info, n_jets=int(spec.get("n_jets", c.SPANET_MAX_JETS)), datasets=wanted or {},
                                 four_tag=bool(spec.get("four_tag", True)), seed=int(spec.get("seed", 0)),
                                 global_features=globals_, background_values=background)
    cfg = job.config["executor"]
    start = time.perf_counter()
    with executor_for(job, status=status) as executor:
        runner = processor.Runner(executor=executor, schema=AutoSchema, chunksize=int(cfg.get("chunksize") or 100_000),
                                  maxchunks=int(job.config["quick_chunks"]) if quick else None,
                                  skipbadfiles=job.config["on_bad_file"] == "skip")
        result = runner(fileset.coffea, proc)
    names = list(fileset.coffea)
    arrays = collect(result, names)
    n = len(arrays["label"])
    rng = np.random.default_rng(int(spec.get("seed", 0)))
    order = rng.permutation(n)  # mixed datasets: SPANet's train/validation split takes the tail
    n_test = int(round(float(spec.get("test_fraction", 0.1)) * n))
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    write_h5(out / "training.h5", arrays, info, order[n_test:], names)
    write_h5(out / "testing.h5", arrays, info, order[:n_test], names)
    info.write(out / "event.yaml")
    report = {
        "datasets": names,
        "counts": result["counts"],
        "n_training": int(n - n_test),
        "n_testing": int(n_test),
        "n_jets": proc.n_jets,
        "seconds": time.perf_counter() - start,
        "skipped_files": fileset.skipped,
    }
    (out / "export.json").write_text(json.dumps(report, indent=1))
    return report
