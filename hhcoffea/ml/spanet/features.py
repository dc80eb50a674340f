"""SPA-Net inputs from jets: the leading ``n_jets`` jets by pT as a padded block, and
``Source_data`` in the feature order and with the log transforms of an event file.

The same code builds the HDF5 training files (raw values; SPANet applies its own transforms
when it reads them) and the ONNX inputs at inference (log(x+1) applied here, as the official
export expects; mean/std normalisation is inside the graph). No per-event Python.
"""

from __future__ import annotations

import awkward as ak
import numpy as np

from ...columnar.jets import JetColumns
from .event_info import Feature

__all__ = ["jet_block", "raw_feature", "source_data"]


def jet_block(jets: ak.Array, n_jets: int) -> dict:
    """The ``n_jets`` highest-pT jets of each event, padded.

    Returns ``{"pt", "eta", "phi", "mass", "btag"}`` float64 ``(n, n_jets)`` (0 where padded),
    ``mask`` bool ``(n, n_jets)``, ``index`` int64 ``(n, n_jets)``: each slot's index into the
    event's jets (-1 where padded), and ``n_jets`` ``(n,)``: the event's jet count before truncation.
    """
    cols = JetColumns(jets, fields=("pt", "eta", "phi", "mass"))
    n = cols.n_events
    width = max(int(cols.counts.max()) if n else 0, 1)
    local = np.broadcast_to(np.arange(width), (n, width))
    valid = local < cols.counts[:, None]
    full_index = np.where(valid, local, -1)
    pt_all = cols.gather(full_index, ("pt",))["pt"]
    # stable descending pT; padded (NaN) slots last
    order = np.argsort(np.where(valid, -np.nan_to_num(pt_all, nan=-np.inf), np.inf), axis=1, kind="stable")[:, :n_jets]
    index = np.take_along_axis(full_index, order, axis=1)
    if index.shape[1] < n_jets:
        index = np.pad(index, ((0, 0), (0, n_jets - index.shape[1])), constant_values=-1)
    mask = index >= 0
    block = cols.gather(index, ("pt", "eta", "phi", "mass", "btag"))
    out = {k: np.where(mask, np.nan_to_num(v), 0.0) for k, v in block.items()}
    out.update(mask=mask, index=index, n_jets=cols.counts.copy())
    return out


def raw_feature(block: dict, name: str) -> np.ndarray:
    """One jet feature by its event-file name, before any transform (0 where padded)."""
    mask = block["mask"]
    if name in ("pt", "eta", "phi", "mass", "btag"):
        return block[name]
    if name in ("sinphi", "sin_phi"):
        return np.where(mask, np.sin(block["phi"]), 0.0)
    if name in ("cosphi", "cos_phi"):
        return np.where(mask, np.cos(block["phi"]), 0.0)
    if name in ("energy", "e"):
        pz = block["pt"] * np.sinh(block["eta"])
        return np.where(mask, np.sqrt(block["pt"] ** 2 + pz**2 + block["mass"] ** 2), 0.0)
    raise ValueError(f"jet feature {name!r} is not one hhcoffea can build")


def source_data(block: dict, features: tuple[Feature, ...], log_transform: bool = True) -> np.ndarray:
    """``Source_data`` float32 ``(n, n_jets, F)`` in the order of ``features``.

    ``log_transform``: apply log(x+1) to the features whose option says ``log`` (what SPANet's
    reader does to HDF5 values, and what an official ONNX export leaves to its user).
    """
    mask = block["mask"]
    columns = []
    for f in features:
        x = raw_feature(block, f.name)
        if log_transform and f.log:
            x = np.where(mask, np.log(np.maximum(x, 0.0) + 1.0), 0.0)
        columns.append(x)
    return np.stack(columns, axis=-1).astype(np.float32) if columns else np.zeros(mask.shape + (0,), np.float32)
