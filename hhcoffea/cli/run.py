"""``hhcoffea run JOB.yaml``: make missing samples, run the job through coffea's Runner, write
outputs and provenance, end with a summary (and the job's statistics)."""

from __future__ import annotations

import argparse

from . import add_executor_arguments, executor_overrides
from . import console as _console

__all__ = ["add_arguments", "main"]


def add_arguments(run: argparse.ArgumentParser) -> None:
    run.add_argument("job", help="job YAML file")
    run.add_argument("--quick", action="store_true", help="quick test: only the job's quick_chunks chunks per dataset")
    add_executor_arguments(run, ("iterative", "futures", "dask", "dask-awkward"))
    run.add_argument("--output", help="override the output folder")
    run.add_argument("--no-plots", action="store_true")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--no-statistics", action="store_true", help="skip the job's statistics section")


def main(args) -> int:
    """``hhcoffea run JOB.yaml``: run the job, write its outputs, print the summary (and limits)."""
    from ..workflow.executors import start_local_cluster_forkserver
    from ..workflow.job import load_job

    console = _console()
    overrides = executor_overrides(args)
    if args.output:
        overrides["output"] = args.output
    job = load_job(args.job, overrides)
    # a LocalCluster's workers are forked from a server that imports the chunk's modules: start it
    # now, so it imports on the other core while this process imports coffea and reads the inputs
    start_local_cluster_forkserver(job.config["executor"])

    from ..workflow.output import write_outputs
    from ..workflow.runner import run_job
    from ..workflow.summary import normalisation_lines, summary_table

    result = run_job(job, quick=args.quick, status=not args.no_progress, console=console)
    write_outputs(job, result, plots=not args.no_plots)
    console.print(summary_table(result, job))
    for skipped in result.fileset.skipped:
        console.print(f"[yellow]skipped[/yellow] {skipped['reason']}")
    for name, n in result.lost_events().items():
        console.print(f"[yellow]not processed[/yellow] {name}: {n:,} events (a file failed during the run)")
    for line in normalisation_lines(result):
        console.print(f"[yellow]normalisation[/yellow] {line}")
    if result.output.get("selections"):
        from ..scoring.selections import selection_lines

        for line in selection_lines(result.output["selections"]):
            console.print(f"[bold]selection[/bold] {line}", markup=True, highlight=False)
    console.print(f"outputs: {job.output}")
    if job.config.get("statistics") and not args.no_statistics:
        from ..stats.analysis import run_statistics_for_job

        run_statistics_for_job(job, console=console)
    return 0
