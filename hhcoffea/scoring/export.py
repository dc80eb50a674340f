"""Feature tables for DNN training (``hhcoffea export features``): the processor's paired events
with the 21 features of :mod:`hhcoffea.scoring.features` (the 16 resonant ones are a subset),
``label`` (1 for a signal process), ``weight`` (the job's event weight), ``m_x``, ``file`` and
``file_entry`` (where the event is), and ``in_<region>`` flags of every region.

Background has no kappa_lambda; as in the seeds (PHYSICS.md "ML selections") each background
event gets one drawn at random from the training list ``KAPPA_LAMBDA_TRAINING``, with a generator
seeded by the export seed and the dataset name (same table for the same job and seed, whatever
the chunking). One file per dataset, ``<dataset>.parquet`` (pyarrow) or ``<dataset>.h5`` (h5py,
one HDF5 dataset per column), and ``features.json`` listing them.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .. import constants
from .features import NONRESONANT_FEATURES, RESONANT_FEATURES

__all__ = ["FORMATS", "merge_chunks", "read_feature_index", "read_feature_table", "write_feature_tables"]

FORMATS = {"parquet": ".parquet", "hdf5": ".h5"}


def merge_chunks(chunks: list[dict], dataset: str, metadata: Mapping, seed: int = 0) -> dict[str, np.ndarray]:
    """One dataset's table from its chunks' rows (in file order), background kappa_lambda drawn."""
    if not chunks:
        return {}
    table = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    order = np.lexsort((table["file_entry"], table["file"]))
    table = {k: v[order] for k, v in table.items()}
    if metadata.get("kappa_lambda") is None and metadata.get("process") not in ("resonant", "nonresonant"):
        rng = np.random.default_rng([int(seed), zlib.crc32(dataset.encode())])
        table["kappa_lambda"] = rng.choice(np.asarray(constants.KAPPA_LAMBDA_TRAINING), len(table["label"]))
    return table


def write_feature_tables(features: Mapping[str, list], metadata: Mapping[str, Mapping], directory, *,
                         fmt: str = "parquet", seed: int = 0, pairer: str = "") -> dict:
    """Write one table per dataset and ``features.json``; returns that index."""
    if fmt not in FORMATS:
        raise ValueError(f"feature table format must be one of {sorted(FORMATS)}, got {fmt!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index = {"format": fmt, "pairer": pairer, "seed": int(seed), "resonant_features": list(RESONANT_FEATURES),
             "nonresonant_features": list(NONRESONANT_FEATURES), "kappa_lambda_training": list(constants.KAPPA_LAMBDA_TRAINING),
             "datasets": {}}
    for dataset, chunks in features.items():
        table = merge_chunks(chunks, dataset, metadata.get(dataset, {}), seed)
        if not table:
            continue
        path = directory / f"{dataset}{FORMATS[fmt]}"
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({k: pa.array(v) for k, v in table.items()}), path)
        else:
            import h5py

            with h5py.File(path, "w") as f:
                for k, v in table.items():
                    f.create_dataset(k, data=v.astype("S") if v.dtype.kind in "OU" else v)
        meta = dict(metadata.get(dataset, {}))
        index["datasets"][dataset] = {"file": path.name, "events": int(len(table["label"])),
                                      "weighted": float(table["weight"].sum()), "label": int(table["label"][0]),
                                      "metadata": meta}
    (directory / "features.json").write_text(json.dumps(index, indent=2))
    return index


def read_feature_table(path) -> dict[str, np.ndarray]:
    """A table written by :func:`write_feature_tables` as ``{column: array}``."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no feature table here (hhcoffea export features writes them)")
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return {k: v.to_numpy(zero_copy_only=False) for k, v in zip(pq.read_table(path).column_names,
                                                                       pq.read_table(path).columns)}
    if path.suffix == ".h5":
        import h5py

        with h5py.File(path, "r") as f:
            return {k: f[k][()] for k in f}
    raise ValueError(f"{path}: expected a .parquet or .h5 feature table")


def read_feature_index(directory) -> dict:
    """``features.json`` of an export folder."""
    path = Path(directory) / "features.json"
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found (run hhcoffea export features JOB.yaml -o {directory})")
    return json.loads(path.read_text())
