"""``hhcoffea limits JOB.yaml``: pyhf workspaces, CLs limits and kappa_lambda scans from a job's
histograms; the command line of :mod:`hhcoffea.stats.analysis`.

The job's ``statistics:`` section is documented in :mod:`hhcoffea.stats.config`; what is computed
and written in :mod:`hhcoffea.stats.analysis`. The statistics libraries are imported only when
the command runs, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import pathlib

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``hhcoffea limits JOB.yaml [--output DIR] [--luminosity L ...]``."""
    parser.add_argument("job", type=pathlib.Path, help="job YAML file (its statistics: section)")
    parser.add_argument(
        "--output", type=pathlib.Path, default=None, help="folder with hists/ and metadata.json (default: the job's output:)"
    )
    parser.add_argument(
        "--luminosity", type=float, action="append", default=None, help="fb^-1; repeat for several (overrides the job file)"
    )


def main(args: argparse.Namespace) -> int:
    """Run the job's ``statistics:`` section on its histograms and print the summary."""
    from ..stats.analysis import format_summary, run_statistics_for_job
    from ..stats.workspace import MissingInputError
    from ..workflow.job import load_job

    job = load_job(args.job)
    if args.luminosity:
        job.config.setdefault("statistics", {})
        job.config["statistics"] = dict(job.config["statistics"] or {}, luminosity=list(args.luminosity))
    if args.output:
        job.config["output"] = str(pathlib.Path(args.output).resolve())
    if not job.config.get("statistics"):
        raise MissingInputError(f"{args.job}: the job file has no 'statistics:' section")
    print(format_summary(run_statistics_for_job(job, console=None)))
    print(f"outputs: {job.output / 'statistics'}")
    return 0
