"""``hhcoffea train MODEL OPTIONS.yaml``: train a model (``spanet``: our SPA-Net on SPANet HDF5
files; see hhcoffea.ml.spanet.training for the options)."""

from __future__ import annotations

import argparse

from . import add_targets, training_overrides
from . import console as _console
from . import scoring_targets as _scoring

__all__ = ["TARGETS", "add_arguments", "main"]

TARGETS: dict = {}


def _spanet_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("options", help="options YAML (SPANet option names; paths relative to it)")
    p.add_argument("--output", help="override the output folder (checkpoint.pt, metrics.json)")
    p.add_argument("--epochs", type=int, help="override epochs")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--no-progress", action="store_true")


def _spanet_main(args) -> int:
    from ..ml.spanet.training import load_options, train

    options = load_options(args.options, training_overrides(args))
    console = _console()
    metrics = train(options, console=console)
    console.print(f"event efficiency {metrics.get('event_efficiency', float('nan')):.3f}, "
                  f"Higgs efficiency {metrics.get('higgs_efficiency', float('nan')):.3f}; "
                  f"checkpoint and metrics.json in {options['output']}")
    return 0


TARGETS["spanet"] = (_spanet_arguments, _spanet_main, "train our SPA-Net (torch) on SPANet HDF5 files")

TARGETS["dnn"] = (_scoring.train_dnn_arguments, _scoring.train_dnn_main, _scoring.TRAIN_DNN_HELP)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_targets(parser, TARGETS)


def main(args) -> int:
    """Run the chosen training target."""
    return int(args.target_main(args) or 0)
