"""``hhcoffea export TARGET ...``: write files for other tools (``spanet``: SPANet training data
from a job; ``onnx``: an ONNX model from a SPA-Net checkpoint)."""

from __future__ import annotations

import argparse

from . import add_executor_arguments, add_targets, executor_overrides
from . import console as _console
from . import scoring_targets as _scoring

__all__ = ["TARGETS", "add_arguments", "main"]

#: sub-target -> (function adding its arguments, function running it, help)
TARGETS: dict = {}


def _spanet_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="job YAML file (datasets/samples, executor, export.spanet section)")
    p.add_argument("-o", "--output", required=True, help="folder for training.h5, testing.h5, event.yaml, export.json")
    add_executor_arguments(p)
    p.add_argument("--quick", action="store_true", help="only the job's quick_chunks chunks per dataset")
    p.add_argument("--no-progress", action="store_true")


def _spanet_main(args) -> int:
    from ..workflow.job import load_job
    from ..workflow.spanet_export import run_spanet_export

    console = _console()
    overrides = executor_overrides(args)
    job = load_job(args.job, overrides, plugins=False)
    report = run_spanet_export(job, args.output, status=not args.no_progress, console=console, quick=args.quick)
    for name, counts in report["counts"].items():
        console.print(f"{name}: {counts['events']:,} events, {counts['selected']:,} selected, "
                      f"{counts['ambiguous']:,} ambiguous and {counts['shared_jet']:,} with a shared jet dropped, "
                      f"{counts['written']:,} written")
    console.print(f"{report['n_training']:,} training and {report['n_testing']:,} testing events in {args.output}")
    return 0


def _onnx_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint.pt of hhcoffea train spanet (or its folder)")
    p.add_argument("-o", "--output", required=True, help="ONNX file to write")
    p.add_argument("--n-jets", type=int, default=10, help="jet count of the example input (the axis stays dynamic)")
    p.add_argument("--opset", type=int, default=17)


def _onnx_main(args) -> int:
    from ..ml.spanet.onnx_export import export_onnx

    path = export_onnx(args.checkpoint, args.output, n_jets=args.n_jets, opset=args.opset)
    _console().print(f"wrote {path}")
    return 0


TARGETS["spanet"] = (_spanet_arguments, _spanet_main, "SPANet HDF5 training data and event file from a job")
TARGETS["onnx"] = (_onnx_arguments, _onnx_main, "ONNX file (official SPANet interface) from a SPA-Net checkpoint")

TARGETS["features"] = (_scoring.export_features_arguments, _scoring.export_features_main, _scoring.EXPORT_FEATURES_HELP)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_targets(parser, TARGETS)


def main(args) -> int:
    """Run the chosen export target."""
    return int(args.target_main(args) or 0)
