"""Run a job: make missing samples, check inputs, run coffea's ``processor.Runner`` on the
executor the job names, write outputs with provenance, print a short summary.
"""

from __future__ import annotations

import json
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from coffea import processor

from ..events import AutoSchema, FileInfo, InputError, inspect_file, long_lived_objects_frozen
from ..pairing import get_pairer
from .executors import executor_for, executor_with_monitor
from .job import Job, JobError

__all__ = [
    "Fileset", "RunResult", "build_fileset", "ensure_samples", "executor_for", "in_job_order",
    "make_processor", "normalise", "resolve_datasets", "run_job", "sample_seed",
]



@dataclass
class Fileset:
    """Checked inputs: the coffea fileset, what each file holds, and what was skipped and why."""

    coffea: dict
    files: list[FileInfo] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)


def sample_seed(base_seed: int, name: str) -> int:
    """A stable per-sample seed (same job, same samples, on any machine)."""
    return (int(base_seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**31)


def ensure_samples(job: Job, console=None) -> dict:
    """Generate the job's ``samples`` that are missing; return their datasets entries."""
    spec = job.config.get("samples")
    if not spec:
        return {}
    from ..emulation import generate
    from ..emulation.writer import EMULATION_VERSION, btag_bits
    from ..emulation.xsec import sample_xsec_fb

    directory = job.resolve(spec.get("directory", "data"))
    directory.mkdir(parents=True, exist_ok=True)
    datasets = {}
    for name, sample in (spec.get("generate") or {}).items():
        path = directory / f"{name}.root"
        sidecar = Path(str(path) + ".json")
        options = {k: v for k, v in sample.items() if k not in ("process", "n_events") and v is not None}
        seed = sample_seed(spec.get("seed", 0), name)
        # the sidecar records how a file was made; any difference means make it again
        expected = {"process": sample["process"], "n_generated": int(sample["n_events"]), "seed": seed, **options}
        expected["xsec_fb"] = sample_xsec_fb(sample["process"], options.get("m_x"), options.get("kappa_lambda"))
        expected["btag_bits"] = btag_bits()  # samples from before one bit per working point are remade
        expected["shower"] = options.get("shower")  # a showered file is not a fast one
        expected["emulation_version"] = EMULATION_VERSION  # files of an older emulation are remade
        meta = json.loads(sidecar.read_text()) if path.exists() and sidecar.exists() else None
        if meta is None or any(meta.get(k) != v for k, v in expected.items()):
            if console:
                console.print(f"[dim]generating {name}: {sample}[/dim]")
            # showered samples are slow: their chunks run on the job's worker count
            workers = int((job.config.get("executor") or {}).get("workers") or 1) if options.get("shower") else 1
            meta = generate(sample["process"], int(sample["n_events"]), path, seed=seed, workers=workers, **options)
        datasets[name] = {"files": [str(path)], "metadata": _dataset_metadata(meta)}
    return datasets


def _dataset_metadata(meta: dict) -> dict:
    keep = ("process", "xsec_fb", "n_generated", "m_x", "kappa_lambda", "working_point", "sqrt_s")
    return {k: meta[k] for k in keep if k in meta and meta[k] is not None}


def resolve_datasets(job: Job, generated: dict) -> dict:
    """The generated samples plus the job's ``datasets``. An entry without ``files`` that names a
    generated sample (its own name, or ``sample: NAME``) takes that sample's files and metadata,
    so one sample can be analysed twice (e.g. at two b-tagging working points)."""
    datasets = dict(generated)
    for name, entry in (job.config.get("datasets") or {}).items():
        entry = {k: v for k, v in (entry or {}).items() if v is not None}
        base = entry.pop("sample", None)
        if base is not None and base not in generated:
            raise JobError(f"{job.path}: datasets.{name}.sample: {base!r} is not a generated sample ({', '.join(generated) or 'none'})")
        base = base or (name if not entry.get("files") and name in generated else None)
        if base is not None:
            metadata = {k: v for k, v in (entry.get("metadata") or {}).items() if v is not None}
            entry = {**generated[base], **{k: v for k, v in entry.items() if k not in ("files", "metadata")}}
            entry["metadata"] = {**generated[base].get("metadata", {}), **metadata}
        elif not entry.get("files"):
            raise JobError(f"{job.path}: datasets.{name}: no files (and no generated sample of that name or 'sample:')")
        datasets[name] = entry
    return datasets


def _check_complete(path) -> None:
    """A local ROOT file shorter than its header's end-of-file offset was cut off (an interrupted
    copy): its header and first baskets read, later chunks would fail mid-run."""
    import os

    import uproot

    if "://" in str(path):
        return
    with uproot.open(path) as f:
        expected, size = int(f.file.fEND), os.path.getsize(path)
    if size < expected:
        raise InputError(f"{path}: truncated ROOT file ({size:,} bytes; its header says {expected:,})")


def build_fileset(job: Job, datasets: dict, btagging=None) -> Fileset:
    """Check every input file; files that fail are skipped (counted, with the reason) or fatal.

    ``btagging`` (a ``BTagging``): each dataset's tag branch is checked too; a missing one is a
    job error (one line naming file, branch and job key), never skipped."""
    from .btag import tag_check

    fileset = Fileset(coffea={})
    for name, entry in datasets.items():
        files = entry.get("files") or []
        if isinstance(files, (str, Path)):
            files = [files]
        metadata = dict(entry.get("metadata") or {})
        check = tag_check(btagging, name) if btagging is not None else None
        if check is not None:  # the working point this dataset is analysed at (plots, metadata.json)
            metadata["working_point"] = btagging.for_dataset(name).name
        good = {}
        for f in files:
            path = job.resolve(f) if "://" not in str(f) else f
            try:
                info = inspect_file(path, tag_check=check)
                _check_complete(path)
            except InputError as err:
                if job.config["on_bad_file"] == "fail":
                    raise
                fileset.skipped.append({"dataset": name, "file": str(path), "reason": str(err)})
                continue
            fileset.files.append(info)
            good[str(path)] = info.tree
        if good:
            fileset.coffea[name] = {"files": good, "metadata": metadata}
    if not fileset.coffea:
        reasons = "; ".join(s["reason"] for s in fileset.skipped[:3])
        raise InputError(f"no readable input files in job {job.path}: {reasons or 'none given'}")
    return fileset


def make_processor(job: Job, datasets: dict | None = None):
    """The HH processor of a validated job (pairers constructed with their options); ``datasets``
    (default: the job's) carry the per-dataset b-tagging."""
    from hhcoffea.processors.hh4b import HH4bProcessor, JetScaleVariation

    from .btag import btagging_for

    cfg = job.config
    btagging = btagging_for(job, cfg.get("datasets") if datasets is None else datasets)
    pairers = {label: get_pairer((spec or {}).get("plugin") or label, **((spec or {}).get("options") or {}))
               for label, spec in cfg["pairers"].items()}
    systematics = [JetScaleVariation(name, float(spec["size"])) for name, spec in (cfg["systematics"] or {}).items()]
    binning = {name: spec["bins"] for name, spec in (cfg["histograms"] or {}).items() if spec.get("bins") is not None}
    hist_systs = {name: list(spec.get("systematics") or []) for name, spec in (cfg["histograms"] or {}).items()}
    sel = cfg.get("selection") or {}
    kwargs = {k: float(sel[k]) for k in ("jet_pt_min", "jet_eta_max") if sel.get(k) is not None}
    from ..scoring.selections import build_scoring

    try:
        scoring = build_scoring(cfg.get("scorers"), cfg.get("selections"), pairers, binning.get("m_hh"), str(job.path))
    except (ValueError, TypeError) as err:
        raise JobError(str(err)) from None
    return HH4bProcessor(
        pairers=pairers,
        scoring=scoring,
        luminosity=float(cfg["luminosity"]),
        binning=binning,
        systematics=systematics,
        histogram_systematics=hist_systs,
        btagging=btagging if btagging.configured else None,
        **kwargs,
    )


@dataclass
class RunResult:
    """A run's accumulated output, its inputs, and what this run did itself.

    ``chunks_reused`` / ``events_reused``: loaded from checkpoints of the same job, not computed;
    ``workers_lost``: dask workers that left during the run (their chunks were redone).
    """

    output: dict
    fileset: Fileset
    seconds: float
    quick: bool
    chunks_reused: int = 0
    chunks_computed: int | None = None
    events_reused: int = 0
    workers_lost: int = 0

    @property
    def events_processed(self) -> int:
        return int(sum(self.output["events_in"].values()))

    @property
    def events_computed(self) -> int:
        """Events this run processed itself (throughput counts these only)."""
        return self.events_processed - self.events_reused

    def expected_events(self, dataset: str) -> int:
        files = self.fileset.coffea[dataset]["files"]
        # by path: two datasets may read the same file (one sample at two working points)
        return sum({f.path: f.n_events for f in self.fileset.files if f.path in files}.values())

    def lost_events(self) -> dict[str, int]:
        """Events of checked files that the run did not process (a file failed mid-run)."""
        if self.quick:
            return {}
        lost = {}
        for name in self.fileset.coffea:
            missing = self.expected_events(name) - int(self.output["events_in"].get(name, 0))
            if missing > 0:
                lost[name] = missing
        return lost


def run_job(job: Job, *, quick: bool = False, status: bool = True, console=None, configure=None) -> RunResult:
    """Everything ``hhcoffea run`` does except writing: returns the accumulated output.

    ``configure``: called with the processor before the run (``hhcoffea export features`` asks
    it for the feature table this way)."""
    from .btag import btagging_for, ensure_efficiency_maps
    from .executors import start_local_cluster_forkserver

    start_local_cluster_forkserver(job.config["executor"])  # its imports overlap with the set-up below
    datasets = resolve_datasets(job, ensure_samples(job, console))
    ensure_efficiency_maps(job, datasets, console, status=status)
    fileset = build_fileset(job, datasets, btagging=btagging_for(job, datasets, load_corrections=False))
    proc = make_processor(job, datasets)
    if configure is not None:
        configure(proc)
    cfg = job.config["executor"]
    checkpointer = None
    if cfg.get("checkpoint"):
        from .checkpoints import JobCheckpointer, job_fingerprint

        checkpointer = JobCheckpointer(job.resolve(cfg["checkpoint"]), job_fingerprint(job.config))
    start = time.perf_counter()
    if cfg["name"] == "dask-awkward":
        from .dask_awkward import run_dask_awkward

        output, workers_lost = run_dask_awkward(job, fileset, proc, quick=quick)
    else:
        with executor_with_monitor(job, status=status) as (executor, monitor):
            runner = processor.Runner(
                executor=executor,
                schema=AutoSchema,
                chunksize=int(cfg.get("chunksize") or 100_000),
                maxchunks=int(job.config["quick_chunks"]) if quick else None,
                # a file that breaks mid-run is skipped too; the summary counts the events it lost
                skipbadfiles=job.config["on_bad_file"] == "skip",
                checkpointer=checkpointer,
                # a fresh cache: coffea's default one is per process and keeps a file's dataset
                # metadata (xsec_fb, ...) from an earlier run in the same process
                metadata_cache={},
            )
            with long_lived_objects_frozen():  # cheap per-chunk collection (events.release_chunk_garbage)
                output = runner(fileset.coffea, proc)
            workers_lost = monitor.workers_lost()
    seconds = time.perf_counter() - start
    run = output.pop("run", {})
    output["normalisation"] = normalise(output, fileset, job.config["normalise"])
    if proc.scoring is not None:  # thresholds from the whole run's S and B (hhcoffea.scoring.selections)
        from ..scoring.selections import finalise_selections

        metadata = {name: entry["metadata"] for name, entry in fileset.coffea.items()}
        output["selections"] = finalise_selections(output["histograms"], proc.scoring.selections, metadata)
    output["histograms"] = in_job_order(output["histograms"], {
        "dataset": list(fileset.coffea), "pairer": list(job.config["pairers"]),
    })
    return RunResult(output=output, fileset=fileset, seconds=seconds, quick=quick,
                     chunks_reused=int(run.get("chunks_reused", 0)),
                     chunks_computed=int(run["chunks_computed"]) if "chunks_computed" in run else None,
                     events_reused=int(run.get("events_reused", 0)), workers_lost=workers_lost)


def normalise(output: dict, fileset: Fileset, mode: str = "generated") -> dict:
    """Say what each dataset's weights divide by, and rescale them for ``mode="processed"``.

    The processor weights every event by genWeight x xsec_fb x luminosity / n_generated. When a
    run reads fewer events than ``n_generated`` (skipped files, lost chunks, quick mode) the
    yields are then short by the fraction not read; ``processed`` divides by the events read
    instead (the usual choice when no sum of weights is known), rescaling histograms and
    cutflow in place. Returns ``{dataset: {mode, n_generated, n_processed, fraction, factor}}``.
    """
    if mode not in ("generated", "processed"):
        raise JobError(f"normalise must be 'generated' or 'processed', got {mode!r}")
    report = {}
    for name, entry in fileset.coffea.items():
        meta = entry["metadata"]
        n_processed = int(output["events_in"].get(name, 0))
        n_generated = meta.get("n_generated")
        if not n_generated or meta.get("xsec_fb") is None:
            report[name] = {"mode": "genWeight only", "n_processed": n_processed}
            continue
        factor = n_generated / n_processed if mode == "processed" and n_processed else 1.0
        report[name] = {"mode": mode, "n_generated": int(n_generated), "n_processed": n_processed,
                        "fraction": n_processed / n_generated, "factor": factor}
        if factor != 1.0:
            _scale_dataset(output, name, factor)
    return report


def _scale_dataset(output: dict, dataset: str, factor: float) -> None:
    for h in output["histograms"].values():
        if "dataset" not in h.axes.name or dataset not in h.axes["dataset"]:
            continue
        view = h.view(flow=True)
        if view.dtype.names is None:  # unweighted counts (truth pairing): nothing to rescale
            continue
        index = (slice(None),) * h.axes.name.index("dataset") + (h.axes["dataset"].index(dataset),)
        view["value"][index] *= factor
        view["variance"][index] *= factor**2
    for flows in output["cutflow"].get(dataset, {}).values():
        for steps in flows.values():
            for cell in steps.values():
                cell[1] *= factor


def in_job_order(histograms: dict, orders: dict[str, list]) -> dict:
    """Histograms with their growing category axes (dataset, pairer) in the job's order.

    coffea fills categories in the order chunks finish, which differs between executors; in a
    fixed order, ``h.values()`` of two runs compare directly.
    """
    import warnings

    result = {}
    for name, h in histograms.items():
        pick = {}
        for axis, order in orders.items():
            if axis in h.axes.name:
                present = set(h.axes[axis])
                wanted = [x for x in order if x in present] + sorted(present - set(order))
                if list(h.axes[axis]) != wanted:
                    pick[axis] = wanted
        if pick:
            with warnings.catch_warnings():  # hist calls list selection experimental
                warnings.simplefilter("ignore", UserWarning)
                h = h[pick]
        result[name] = h
    return result
