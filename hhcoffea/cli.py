"""The ``hhcoffea`` command: run, generate, plugins, limits, inspect."""

from __future__ import annotations

import argparse
import sys

from rich.console import Console
from rich.table import Table


def _console() -> Console:
    # soft wrap: a message (a file path, an error) stays on one line whatever the width
    return Console(stderr=False, highlight=False, soft_wrap=True)


# --- run ------------------------------------------------------------------------------------------


def summary_table(result, job) -> Table:
    """Events in/out per dataset, time, throughput, files skipped and why."""
    out = result.output
    first_pairer = next(iter(job.config["pairers"]))
    table = Table(title=f"hhcoffea run: {job.config['name']}" + (" (quick test)" if result.quick else ""))
    for col in ("dataset", "files", "events in", "processed", "excluded (NaN/inf)", "four-tag",
                f"SR ({first_pairer})", "SR weighted"):
        table.add_column(col, justify="right" if col != "dataset" else "left")
    for name, entry in result.fileset.coffea.items():
        n_files = len(entry["files"])
        processed = int(out["events_in"].get(name, 0))
        excluded = int(out.get("excluded", {}).get(name, {}).get("nonfinite_kinematics", 0))
        flow = out["cutflow"].get(name, {}).get(first_pairer, {}).get("nonresonant", {})
        four = int(flow["four_tag"][0]) if "four_tag" in flow else 0
        sr_n = int(flow["signal_region"][0]) if "signal_region" in flow else 0
        sr_w = float(flow["signal_region"][1]) if "signal_region" in flow else 0.0
        table.add_row(name, str(n_files), f"{result.expected_events(name):,}", f"{processed:,}", f"{excluded:,}",
                      f"{four:,}", f"{sr_n:,}", f"{sr_w:.4g}")
    n = result.events_processed
    table.caption = (
        f"{n:,} events in {result.seconds:.1f} s = {n / max(result.seconds, 1e-9):,.0f} events/s; "
        f"files skipped: {len(result.fileset.skipped)}"
    )
    return table


def normalisation_lines(result) -> list[str]:
    """One line per dataset whose weights do not stand for all of its generated events."""
    lines = []
    for name, norm in result.output.get("normalisation", {}).items():
        fraction = norm.get("fraction")
        if fraction is None or abs(fraction - 1.0) < 1e-12:
            continue
        if norm["mode"] == "processed":
            lines.append(f"{name}: weights divide by the {norm['n_processed']:,} events processed "
                         f"({fraction:.1%} of n_generated = {norm['n_generated']:,}; normalise: processed)")
        else:
            lines.append(f"{name}: weights divide by n_generated = {norm['n_generated']:,}, but {norm['n_processed']:,} "
                         f"events ({fraction:.1%}) were processed: yields are short by that fraction "
                         "(set normalise: processed to divide by the events read)")
    return lines


def cmd_run(args) -> int:
    from .workflow.job import load_job
    from .workflow.output import write_outputs
    from .workflow.runner import run_job

    console = _console()
    overrides = {}
    if args.executor:
        overrides.setdefault("executor", {})["name"] = args.executor
    if args.workers:
        overrides.setdefault("executor", {})["workers"] = args.workers
    if args.output:
        overrides["output"] = args.output
    job = load_job(args.job, overrides)
    result = run_job(job, quick=args.quick, status=not args.no_progress, console=console)
    write_outputs(job, result, plots=not args.no_plots)
    console.print(summary_table(result, job))
    for skipped in result.fileset.skipped:
        console.print(f"[yellow]skipped[/yellow] {skipped['reason']}")
    for name, n in result.lost_events().items():
        console.print(f"[yellow]not processed[/yellow] {name}: {n:,} events (a file failed during the run)")
    for line in normalisation_lines(result):
        console.print(f"[yellow]normalisation[/yellow] {line}")
    console.print(f"outputs: {job.output}")
    if job.config.get("statistics") and not args.no_statistics:
        from .stats.cli import run_statistics_for_job

        run_statistics_for_job(job, console=console)
    return 0


# --- plugins ------------------------------------------------------------------------------------


def cmd_plugins(args) -> int:
    """List the registered plugins from entry-point metadata, importing none; with ``--check``,
    load each (a broken one warns) and exit 1 if any fails."""
    from . import registry

    console = _console()
    table = Table(title="hhcoffea plugins")
    for col in ("kind", "name", "target", "from package") + (("status",) if args.check else ()):
        table.add_column(col)
    if args.check:
        rows = [(info, "ok" if error is None else f"failed: {error}") for info, error in registry.check()]
    else:
        rows = [(info,) for kind in registry.GROUPS for _, info in sorted(registry.plugins(kind).items())]
    for info, *status in rows:
        table.add_row(info.kind, info.name, info.target, info.distribution, *status)
    console.print(table)
    failed = [info for info, *status in rows if status and status[0] != "ok"]
    for info in failed:
        console.print(f"[red]broken {info.kind} plugin[/red] {info.name} ({info.target}, from {info.distribution})")
    return 1 if failed else 0


# --- inspect ------------------------------------------------------------------------------------


def cmd_inspect(args) -> int:
    from .events import InputError, inspect_file

    console = _console()
    status = 0
    for path in args.files:
        try:
            info = inspect_file(path)
            console.print(f"{info.path}: {info.layout} layout, tree '{info.tree}', {info.n_events:,} events, truth: {info.has_truth}")
        except InputError as err:
            console.print(f"[red]{err}[/red]")
            status = 1
    return status


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hhcoffea", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a job file with coffea's Runner")
    run.add_argument("job", help="job YAML file")
    run.add_argument("--quick", action="store_true", help="quick test: only the job's quick_chunks chunks per dataset")
    run.add_argument("--executor", choices=("iterative", "futures", "dask"), help="override the job's executor")
    run.add_argument("--workers", type=int, help="override the number of workers")
    run.add_argument("--output", help="override the output folder")
    run.add_argument("--no-plots", action="store_true")
    run.add_argument("--no-progress", action="store_true")
    run.add_argument("--no-statistics", action="store_true", help="skip the job's statistics section")
    run.set_defaults(func=cmd_run)

    gen = sub.add_parser("generate", help="write emulated NanoAOD-like samples")
    from .emulation import cli as emulation_cli

    emulation_cli.add_arguments(gen)
    gen.set_defaults(func=emulation_cli.main)

    plug = sub.add_parser("plugins", help="list registered pairers and scorers")
    plug.add_argument("--check", action="store_true", help="load every plugin and report the ones that fail")
    plug.set_defaults(func=cmd_plugins)

    insp = sub.add_parser("inspect", help="check input files: layout, tree, events")
    insp.add_argument("files", nargs="+")
    insp.set_defaults(func=cmd_inspect)

    lim = sub.add_parser("limits", help="pyhf workspaces, CLs limits and kappa_lambda scans from a job's histograms")
    from .stats import cli as stats_cli

    stats_cli.add_arguments(lim)
    lim.set_defaults(func=stats_cli.main)
    return parser


def main(argv=None) -> int:
    from .events import InputError
    from .workflow.job import JobError
    from .registry import PluginNotFoundError
    from .stats.workspace import MissingInputError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (InputError, JobError, PluginNotFoundError, MissingInputError, ValueError) as err:
        print(f"hhcoffea {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
