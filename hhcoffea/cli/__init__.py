"""The ``hhcoffea`` command: run, check, generate, plugins, inspect, limits.

One module per subcommand, each thin over library functions. Building the parser imports only
these modules (argparse, no numpy, coffea or pyhf); a subcommand's libraries load when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = [
    "SUBCOMMANDS", "add_executor_arguments", "add_targets", "build_parser", "console", "executor_overrides", "main",
    "training_overrides",
]

#: subcommand -> (module under hhcoffea.cli, help)
SUBCOMMANDS = {
    "run": ("run", "run a job file with coffea's Runner"),
    "check": ("check", "validate a job file without running it"),
    "generate": ("generate", "write emulated NanoAOD-like samples"),
    "plugins": ("plugins", "list registered pairers and scorers"),
    "inspect": ("inspect", "check input files: layout, tree, events"),
    "limits": ("limits", "pyhf workspaces, CLs limits and kappa_lambda scans from a job's histograms"),
    "export": ("export", "write files for other tools: SPANet training data, ONNX models"),
    "train": ("train", "train a model (SPA-Net) from exported training data"),
    "btag": ("btag", "b-tagging: measure efficiency maps (correctionlib) from a job's simulated samples"),
}


def console():
    """A rich console; soft wrap keeps a message (a file path, an error) on one line."""
    from rich.console import Console

    # a log file or pipe has no width: wide enough that the summary table's columns keep their names
    return Console(stderr=False, highlight=False, soft_wrap=True, width=None if sys.stdout.isatty() else 160)


def add_executor_arguments(parser: argparse.ArgumentParser, executors=("iterative", "futures", "dask")) -> None:
    """``--executor`` and ``--workers``: the job's executor, overridden from the command line."""
    parser.add_argument("--executor", choices=executors, help="override the job's executor")
    parser.add_argument("--workers", type=int, help="override the number of workers")


def executor_overrides(args: argparse.Namespace) -> dict:
    """The job overrides that :func:`add_executor_arguments` options ask for."""
    executor = {key: value for key, value in (("name", args.executor), ("workers", args.workers)) if value}
    return {"executor": executor} if executor else {}


def training_overrides(args: argparse.Namespace) -> dict:
    """Options of a training command overridden from the command line (``--epochs``,
    ``--no-resume``, ``--no-progress``; each only where the command has it)."""
    overrides = {}
    if getattr(args, "epochs", None) is not None:
        overrides["epochs"] = args.epochs
    if getattr(args, "no_resume", False):
        overrides["resume"] = False
    if getattr(args, "no_progress", False):
        overrides["progress"] = False
    if getattr(args, "output", None):
        from pathlib import Path

        overrides["output"] = str(Path(args.output).resolve())
    return overrides


def add_targets(parser: argparse.ArgumentParser, targets: dict) -> None:
    """Sub-targets of a subcommand (``hhcoffea export spanet``): ``{name: (add_arguments, main,
    help)}``; the chosen one's ``main`` runs as ``args.target_main``."""
    sub = parser.add_subparsers(dest="target", required=True)
    for name, (arguments, run, help_text) in targets.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        arguments(p)
        p.set_defaults(target_main=run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hhcoffea", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        command = importlib.import_module(f"{__name__}.{module}")
        p = sub.add_parser(name, help=help_text, description=command.__doc__.splitlines()[0])
        command.add_arguments(p)
        p.set_defaults(func=command.main)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Exception as err:
        # one line for what the user can fix (input, job file, plugin name); a traceback otherwise
        from ..registry import PluginNotFoundError
        from ..stats.workspace import MissingInputError

        if isinstance(err, (ValueError, PluginNotFoundError, MissingInputError)):
            for line in str(err).splitlines() or [type(err).__name__]:  # one line per problem
                print(f"hhcoffea {args.command}: error: {line}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
