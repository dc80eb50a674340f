"""The scoring sub-targets of ``hhcoffea export`` and ``hhcoffea train``: ``export features``
(DNN feature tables from a job) and ``train dnn`` (the DNN classifier on them).

Registered in :data:`hhcoffea.cli.export.TARGETS` and :data:`hhcoffea.cli.train.TARGETS`.
Light at import (argparse only): the libraries load when a target runs.
"""

from __future__ import annotations

import argparse

from . import add_executor_arguments, executor_overrides, training_overrides
from . import console as _console

__all__ = ["export_features_arguments", "export_features_main", "train_dnn_arguments", "train_dnn_main"]

EXPORT_FEATURES_HELP = "DNN feature tables (16 resonant / 21 non-resonant features, labels, weights) from a job"
TRAIN_DNN_HELP = "train the DNN classifier on feature tables (hhcoffea export features); writes ONNX"


def export_features_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("job", help="job YAML file (its datasets or samples, executor)")
    p.add_argument("-o", "--output", required=True, help="folder for <dataset>.parquet|.h5 and features.json")
    p.add_argument("--pairer", help="pairer label whose candidates make the features (default: the job's first)")
    p.add_argument("--format", choices=("parquet", "hdf5"), default="parquet")
    p.add_argument("--seed", type=int, default=0, help="seed of the kappa_lambda drawn for background events")
    add_executor_arguments(p)
    p.add_argument("--quick", action="store_true", help="only the job's quick_chunks chunks per dataset")
    p.add_argument("--no-progress", action="store_true")


def export_features_main(args) -> int:
    """Run the job's processor (nominal only, no selections) collecting the feature rows."""
    from ..scoring.export import write_feature_tables
    from ..workflow.job import load_job
    from ..workflow.runner import run_job

    console = _console()
    overrides = {"selections": {}, "systematics": {}, "histograms": {}, **executor_overrides(args)}
    job = load_job(args.job, overrides)
    pairer = args.pairer or next(iter(job.config["pairers"]))
    if pairer not in job.config["pairers"]:
        raise ValueError(f"{args.job}: --pairer {pairer!r} is not one of the job's pairers {list(job.config['pairers'])}")

    def configure(proc):
        proc.feature_export = pairer

    result = run_job(job, quick=args.quick, status=not args.no_progress, console=console, configure=configure)
    metadata = {name: entry["metadata"] for name, entry in result.fileset.coffea.items()}
    index = write_feature_tables(result.output.get("features", {}), metadata, args.output, fmt=args.format,
                                 seed=args.seed, pairer=pairer)
    for name, entry in index["datasets"].items():
        console.print(f"{name}: {entry['events']:,} paired events (label {entry['label']}) -> {entry['file']}")
    console.print(f"feature tables ({pairer} pairing) in {args.output}")
    return 0


def train_dnn_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("options", help="options YAML (hhcoffea.ml.dnn.TRAINING_DEFAULTS keys; paths relative to it)")
    p.add_argument("--output", help="override the output folder (model.onnx, model.pt, metrics.json)")
    p.add_argument("--epochs", type=int, help="override epochs")
    p.add_argument("--no-progress", action="store_true")


def train_dnn_main(args) -> int:
    from ..ml.dnn import load_training_options, train_dnn

    options = load_training_options(args.options, training_overrides(args))
    console = _console()
    metrics = train_dnn(options, console=console)
    console.print(f"{metrics['analysis']} DNN: validation AUC {metrics['validation_auc']:.3f}, accuracy "
                  f"{metrics['validation_accuracy']:.3f} (best epoch {metrics['best_epoch']} of {metrics['epochs_run']}); "
                  f"model.onnx, model.pt and metrics.json in {options['output']}")
    return 0
