"""``hhcoffea btag measure JOB.yaml``: measure b-tagging efficiency maps from a job's simulated
samples through coffea's Runner and write them as a correctionlib file (schema v2)."""

from __future__ import annotations

import argparse

from . import add_executor_arguments, executor_overrides
from . import console as _console

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="btag_command", required=True)
    measure = sub.add_parser("measure", help="efficiency maps (correctionlib JSON) from the job's samples",
                             description=__doc__.splitlines()[0])
    measure.add_argument("job", help="job YAML file")
    measure.add_argument("-o", "--output", help="file to write (default: the job's btagging.efficiency)")
    measure.add_argument("--working-point", action="append", dest="working_points",
                         help="measure this working point on every dataset (repeatable; default: each dataset's own)")
    measure.add_argument("--datasets", nargs="+", help="only these datasets (default: all)")
    measure.add_argument("--flow", choices=("error", "clamp"), help="out-of-range inputs (default: btagging.measure.flow or error)")
    measure.add_argument("--min-jets", type=float, help="merge bins with fewer effective jets (default 100)")
    add_executor_arguments(measure)
    measure.add_argument("--no-progress", action="store_true")


def main(args) -> int:
    """Run the measurement and print, per working point and flavour, jets and efficiency."""
    from ..workflow.btag import measure_efficiency
    from ..workflow.job import load_job
    from ..workflow.runner import ensure_samples, resolve_datasets

    console = _console()
    overrides = executor_overrides(args)
    job = load_job(args.job, overrides)
    datasets = resolve_datasets(job, ensure_samples(job, console))
    if args.datasets:
        unknown = set(args.datasets) - set(datasets)
        if unknown:
            raise ValueError(f"{job.path}: unknown dataset(s) {sorted(unknown)}; known: {', '.join(datasets)}")
        datasets = {k: v for k, v in datasets.items() if k in args.datasets}
    output = job.resolve(args.output) if args.output else None
    result = measure_efficiency(job, datasets, args.working_points, output, status=not args.no_progress,
                                flow=args.flow, min_jets=args.min_jets)
    names = {5: "b", 4: "c", 0: "light"}
    for row in result["rows"]:
        console.print(f"{row['working_point']:>16} {names[row['flavor']]:>5}: {row['jets']:>12,.0f} jets, "
                      f"efficiency {row['efficiency']:.4f} (table {row['nominal']:.4f})")
    console.print(f"wrote {result['path']}")
    return 0
