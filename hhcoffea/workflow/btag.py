"""b-tagging in a job: the per-dataset setup, input checks of the tag branch, and the efficiency
measurement (``hhcoffea btag measure``; ``hhcoffea run`` makes missing maps the same way).
"""

from __future__ import annotations

from pathlib import Path

from ..corrections.btagging import BTagging, load_working_points, measure_options, parse_btagging
from ..corrections.btagging.working_points import check_tag_branch
from .job import Job

__all__ = ["btagging_for", "tag_check", "measure_efficiency", "ensure_efficiency_maps"]


def btagging_for(job: Job, datasets: dict, load_corrections: bool = True) -> BTagging:
    """The job's :class:`BTagging` for these datasets (paths relative to the job file)."""
    return parse_btagging(job.config.get("btagging"), datasets, resolve=job.resolve, load_corrections=load_corrections)


def tag_check(btagging: BTagging, dataset: str):
    """The ``inspect_file`` check of how ``dataset``'s jets are tagged, or None (the layout's own
    ``btag`` branch, bit 0: checked as before)."""
    setup = btagging.for_dataset(dataset)
    if setup.working_point is None:
        return None

    def check(path, tree, layout):
        check_tag_branch(str(path), tree, layout, setup.rule(layout.name))

    return check


def measure_efficiency(job: Job, datasets: dict, working_points=None, output=None, *, status: bool = True,
                       console=None, flow: str | None = None, min_jets: float | None = None) -> dict:
    """Measure ε(flavour, |η|, pT) with coffea's Runner over ``datasets`` and write correctionlib maps.

    ``working_points``: names to measure on every dataset; by default each dataset's own working
    point. ``output``: the file (default: the job's ``btagging.efficiency``). Returns
    ``{"path", "rows", "events"}`` (``rows``: jets and average efficiency per working point and flavour).
    """
    from coffea import processor

    from hhcoffea.processors.btag_efficiency import BTagEfficiencyProcessor

    from ..corrections.btagging.maps import efficiency_correction_set, write_efficiency_file
    from ..corrections.btagging.measure import maps_from_counts, summary_rows
    from ..events import AutoSchema
    from .runner import build_fileset, executor_for

    top = job.config.get("btagging") or {}
    options = measure_options(top)
    flow = flow or options["flow"]
    min_jets = options["min_jets"] if min_jets is None else float(min_jets)
    btagging = btagging_for(job, datasets, load_corrections=False)
    table = load_working_points(top.get("working_points"))
    wanted = {}
    for name in datasets:
        names = list(working_points or [])
        if not names:
            setup = btagging.for_dataset(name)
            if setup.working_point is None:
                raise ValueError(f"{job.path}: dataset {name!r} has no btagging.working_point to measure (or pass --working-point)")
            names = [setup.working_point.name]
        for wp in names:
            if wp not in table:
                raise ValueError(f"{job.path}: unknown working point {wp!r}; known: {', '.join(table)}")
        wanted[name] = names
    if output is None:
        if not top.get("efficiency"):
            raise ValueError(f"{job.path}: btagging.efficiency names no file to write (or pass --output)")
        output = job.resolve(top["efficiency"])
    fileset = build_fileset(job, datasets, btagging=btagging)
    proc = BTagEfficiencyProcessor(btagging=btagging, working_points=wanted, table=table,
                                   abseta_edges=options["abseta"], pt_edges=options["pt"])
    with executor_for(job, status=status) as executor:
        runner = processor.Runner(executor=executor, schema=AutoSchema,
                                  chunksize=int(job.config["executor"].get("chunksize") or 100_000))
        out = runner(fileset.coffea, proc)
    counts = out["counts"]
    maps = maps_from_counts(counts, table, min_jets)
    text = (f"hhcoffea btag measure {Path(job.path).name}: datasets {', '.join(fileset.coffea)}; "
            f"selected jets pT > 40 GeV, |eta| < 2.5; bins with fewer than {min_jets:g} jets merged; flow {flow}")
    path = write_efficiency_file(efficiency_correction_set(maps, options["abseta"], options["pt"], flow, text), output)
    if console is not None:
        console.print(f"btag efficiency maps: {path}")
    return {"path": path, "rows": summary_rows(counts, table), "events": dict(out["events"])}


def ensure_efficiency_maps(job: Job, datasets: dict, console=None, status: bool = True) -> list[Path]:
    """Measure the efficiency files that weighted setups name but that do not exist yet (as
    missing samples are generated); each file from the datasets whose working point it serves."""
    btagging = btagging_for(job, datasets, load_corrections=False)
    missing: dict[Path, set] = {}
    for name in datasets:
        setup = btagging.for_dataset(name)
        if setup.weighted and setup.efficiency_path is not None and not setup.efficiency_path.exists():
            missing.setdefault(setup.efficiency_path, set()).add(setup.working_point.name)
    made = []
    for path, names in missing.items():
        use = {n: d for n, d in datasets.items() if btagging.for_dataset(n).working_point is not None
               and btagging.for_dataset(n).working_point.name in names}
        if console is not None:
            console.print(f"[dim]measuring b-tagging efficiency maps {path} ({', '.join(sorted(names))})[/dim]")
        made.append(measure_efficiency(job, use, output=path, status=status)["path"])
    return made
