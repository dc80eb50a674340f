"""SPA-Net training data: a coffea processor that turns events into SPANet's HDF5 layout, the
writer, and the reader our trainer uses.

HDF5 layout (SPANet's docs/Dataset.md)::

    INPUTS/Source/{MASK, pt, eta, sinphi, cosphi, mass, btag}   (n, N)   raw values
    INPUTS/GLOBAL/<feature>                                      (n,)     optional
    TARGETS/h1/{b1, b2, WEIGHT}, TARGETS/h2/{b1, b2, WEIGHT}     (n,)     jet slot or -1
    CLASSIFICATIONS/EVENT/signal                                 (n,)     1 signal, 0 background
    INFO/{dataset, entry, n_jets}                                (n,)     provenance (not read by SPANet)

Events: the four-tag events (PHYSICS.md "Objects and preselection"; optional), their jets with
pT >= 20 GeV, the ``N`` leading by pT. Targets: truth matching exactly as the processor's
(:func:`hhcoffea.columnar.truth.match_quarks`, ΔR < 0.4 among all those jets); a quark with no
jet, or whose jet is beyond the N kept, gives -1 (that Higgs is unreconstructable). Events where
a quark has two jets in its cone (``ambiguous``) or two quarks share one jet are dropped and
counted. Background events carry -1 targets.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
from coffea import processor

from ... import constants as c
from ...columnar.selection import four_tag_flat
from ...columnar.truth import match_quarks
from ...events import event_model, higgs_bquarks
from .event_info import EventInfo
from .features import jet_block, raw_feature

__all__ = ["SIGNAL_PROCESSES", "SpanetExportProcessor", "collect", "event_uniform", "read_h5", "write_h5"]

SIGNAL_PROCESSES = ("resonant", "nonresonant")
_TRUTH_FIELDS = ("pdg_id", "mother", "eta", "phi")


def event_uniform(seed: int, dataset: str, entry: np.ndarray, stream: int = 0) -> np.ndarray:
    """A uniform number in [0, 1) per event from (seed, dataset, entry in file, stream): the same
    for an event whatever the chunking or executor (splitmix64 of a counter)."""
    key = np.uint64((int(seed) * 0x9E3779B1 + zlib.crc32(dataset.encode()) * 0x85EBCA77 + stream * 0xC2B2AE3D) % 2**64)
    with np.errstate(over="ignore"):
        z = np.asarray(entry, dtype=np.uint64) + key * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


class SpanetExportProcessor(processor.ProcessorABC):
    """Events -> SPANet arrays, one entry per chunk (sorted and concatenated by :func:`collect`).

    datasets: name -> ``{fraction, weight, label}``: keep that fraction of its events (a
    chunking-independent random choice), weight its targets (``TARGETS/*/WEIGHT``), override
    the class label (default: 1 for resonant/non-resonant signal, 0 otherwise). Datasets not in
    ``datasets`` use the defaults. global_features: names of metadata values fed as ``GLOBAL``
    inputs (``kappa_lambda``); events without one (backgrounds) get a value drawn from
    ``background_values[name]``.
    """

    def __init__(self, event_info: EventInfo, n_jets: int = c.SPANET_MAX_JETS, datasets: dict | None = None,
                 four_tag: bool = True, seed: int = 0, global_features: tuple[str, ...] = (),
                 background_values: dict | None = None) -> None:
        self.event_info = event_info.check_supported()
        self.n_jets = int(n_jets)
        self.datasets = datasets or {}
        self.four_tag = four_tag
        self.seed = int(seed)
        self.global_features = tuple(global_features)
        self.background_values = {k: list(v) for k, v in (background_values or {}).items()}

    def postprocess(self, accumulator):
        return accumulator

    def process(self, events):
        meta = dict(events.metadata)
        dataset = meta["dataset"]
        spec = self.datasets.get(dataset) or {}
        is_signal = meta.get("process") in SIGNAL_PROCESSES
        label = int(spec.get("label", 1 if is_signal else 0))
        model = event_model(events, with_truth=is_signal)
        n_in = len(model)
        entry = int(meta.get("entrystart", 0)) + np.arange(n_in)
        finite = model.finite_events
        if self.four_tag:
            keep = four_tag_flat(model.jet_offsets, model.jet_column("pt"), model.jet_column("eta"),
                                 model.jet_column("btag")) & finite
        else:
            keep = finite.copy()
        n_four_tag = int(keep.sum())
        fraction = float(spec.get("fraction", 1.0))
        if fraction < 1.0:
            keep &= event_uniform(self.seed, dataset, entry) < fraction
        with np.errstate(invalid="ignore"):
            considered = model.jet_column("pt") >= c.JET_PT_CONSIDERED
        take, counts = model.jet_entries(keep, considered)
        jets = model.jets_at(take, counts)
        block = jet_block(jets, self.n_jets)
        n = len(counts)
        n_higgs = self.event_info.n_particles
        targets = np.full((n, n_higgs, 2), -1, dtype=np.int64)
        drop = np.zeros(n, dtype=bool)
        n_ambiguous = n_shared = 0
        if model.has_truth and n:
            bquarks = higgs_bquarks(model.genpart_of(keep, _TRUTH_FIELDS))
            matched, higgs_id, ambiguous = match_quarks(jets, bquarks, n_higgs=n_higgs)
            # jet index within the event -> slot among the N kept (-1 beyond N)
            width = max(int(counts.max()), 1)
            slot_of = np.full((n, width + 1), -1, dtype=np.int64)
            rows = np.repeat(np.arange(n), self.n_jets)
            idx = block["index"].reshape(-1)
            ok = idx >= 0
            slot_of[rows[ok], idx[ok]] = np.tile(np.arange(self.n_jets), n)[ok]
            slots = np.where(matched >= 0, slot_of[np.arange(n)[:, None], np.maximum(matched, 0)], -1)
            found = np.sort(np.where(matched >= 0, matched, -1 - np.arange(matched.shape[1])), axis=1)
            shared = (np.diff(found, axis=1) == 0).any(axis=1)
            for h in range(n_higgs):  # 2 or 3 Higgs, vectorised over events
                is_h = higgs_id == h
                order = np.argsort(~is_h, axis=1, kind="stable")[:, :2]
                pair = np.take_along_axis(slots, order, axis=1)
                both = np.take_along_axis(is_h, order, axis=1).all(axis=1) & (pair >= 0).all(axis=1)
                targets[:, h] = np.where(both[:, None], np.sort(pair, axis=1), -1)
            n_ambiguous = int(ambiguous.sum())
            n_shared = int((shared & ~ambiguous).sum())
            drop = ambiguous | shared
        kept = ~drop
        weight = float(spec.get("weight", 1.0))
        arrays = {
            "mask": block["mask"][kept],
            "targets": targets[kept],
            "label": np.full(int(kept.sum()), label, dtype=np.int64),
            "weight": np.full(int(kept.sum()), weight, dtype=np.float32),
            "entry": entry[keep][kept],
            "n_jets": block["n_jets"][kept],
        }
        for f in self.event_info.jet_features:
            arrays[f"feature/{f.name}"] = raw_feature(block, f.name)[kept].astype(np.float32)
        for name in self.global_features:
            value = meta.get(name)
            if value is None:
                choices = np.asarray(self.background_values.get(name) or [0.0], dtype=np.float32)
                u = event_uniform(self.seed, dataset, arrays["entry"], stream=1)
                arrays[f"global/{name}"] = choices[np.minimum((u * len(choices)).astype(int), len(choices) - 1)]
            else:
                arrays[f"global/{name}"] = np.full(len(arrays["label"]), float(value), dtype=np.float32)
        key = f"{dataset}|{meta.get('filename', '')}|{int(meta.get('entrystart', 0)):015d}"
        counts_out = {"events": n_in, "selected": n_four_tag, "sampled": n, "ambiguous": n_ambiguous,
                      "shared_jet": n_shared, "written": int(kept.sum())}
        return {"chunks": {key: arrays}, "counts": {dataset: counts_out}}


def collect(output: dict, dataset_order: list[str]) -> dict:
    """Concatenate the chunks of an export run in (job dataset order, file, entry) order."""
    order = {name: i for i, name in enumerate(dataset_order)}
    keys = sorted(output["chunks"], key=lambda k: (order.get(k.split("|", 1)[0], len(order)), k))
    if not keys:
        raise ValueError("the export selected no events")
    fields = output["chunks"][keys[0]].keys()
    merged = {f: np.concatenate([output["chunks"][k][f] for k in keys]) for f in fields}
    merged["dataset"] = np.concatenate([
        np.full(len(output["chunks"][k]["label"]), order.get(k.split("|", 1)[0], -1), dtype=np.int64) for k in keys
    ])
    return merged


def write_h5(path: str | Path, arrays: dict, event_info: EventInfo, rows: np.ndarray | None = None,
             dataset_names: list[str] | None = None) -> Path:
    """Write ``arrays`` (from :func:`collect`; ``rows`` selects and orders events) in SPANet's layout."""
    import h5py

    path = Path(path)
    rows = np.arange(len(arrays["label"])) if rows is None else rows
    jets = event_info.jet_input
    with h5py.File(path, "w") as f:
        f.create_dataset(f"INPUTS/{jets}/MASK", data=arrays["mask"][rows].astype(bool))
        for feat in event_info.jet_features:
            f.create_dataset(f"INPUTS/{jets}/{feat.name}", data=arrays[f"feature/{feat.name}"][rows])
        if event_info.global_input:
            for feat in event_info.global_features:
                f.create_dataset(f"INPUTS/{event_info.global_input}/{feat.name}", data=arrays[f"global/{feat.name}"][rows])
        for h, particle in enumerate(event_info.particle_names):
            for d, product in enumerate(event_info.particles[particle]):
                f.create_dataset(f"TARGETS/{particle}/{product}", data=arrays["targets"][rows, h, d])
            f.create_dataset(f"TARGETS/{particle}/WEIGHT", data=arrays["weight"][rows].astype(np.float32))
        for name in event_info.classifications or ("signal",):
            f.create_dataset(f"CLASSIFICATIONS/EVENT/{name}", data=arrays["label"][rows])
        f.create_dataset("INFO/dataset", data=arrays["dataset"][rows])
        f.create_dataset("INFO/entry", data=arrays["entry"][rows])
        f.create_dataset("INFO/n_jets", data=arrays["n_jets"][rows])
        if dataset_names:
            f["INFO"].attrs["datasets"] = np.array(dataset_names, dtype="S")
    return path


def read_h5(path: str | Path, event_info: EventInfo) -> dict:
    """Read a SPANet HDF5 file (ours or anyone's) for our trainer.

    Returns ``source_data`` float32 ``(n, N, F)`` with the event file's log transforms applied
    (as SPANet's reader does), ``source_mask``, ``global_data`` ``(n, G)`` or None, ``targets``
    ``(n, H, 2)``, ``labels`` ``(n,)`` (-1 when absent), ``weights`` ``(n,)``, ``n_jets`` ``(n,)``.
    """
    import h5py

    path = Path(path)
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from None
    with f:
        def need(key):
            if key not in f:
                raise ValueError(f"{path}: missing dataset {key!r} (SPANet layout, see the event file)")
            return f[key][:]

        jets = event_info.jet_input
        mask = need(f"INPUTS/{jets}/MASK").astype(bool)
        cols = []
        for feat in event_info.jet_features:
            x = need(f"INPUTS/{jets}/{feat.name}").astype(np.float32)
            if feat.log:
                x = np.where(mask, np.log(np.maximum(x, 0.0) + 1.0), 0.0).astype(np.float32)
            cols.append(np.where(mask, x, 0.0).astype(np.float32))
        source = np.stack(cols, axis=-1)
        global_data = None
        if event_info.global_input:
            g = []
            for feat in event_info.global_features:
                x = need(f"INPUTS/{event_info.global_input}/{feat.name}").astype(np.float32)
                g.append(np.log(np.maximum(x, 0.0) + 1.0).astype(np.float32) if feat.log else x)
            global_data = np.stack(g, axis=-1)
        targets = np.stack([
            np.stack([need(f"TARGETS/{p}/{d}").astype(np.int64) for d in event_info.particles[p]], axis=-1)
            for p in event_info.particle_names
        ], axis=1)
        first = event_info.particle_names[0]
        weights = f[f"TARGETS/{first}/WEIGHT"][:].astype(np.float32) if f"TARGETS/{first}/WEIGHT" in f \
            else np.ones(len(mask), np.float32)
        label_key = f"CLASSIFICATIONS/EVENT/{(event_info.classifications or ('signal',))[0]}"
        labels = f[label_key][:].astype(np.int64) if label_key in f else np.full(len(mask), -1, np.int64)
        n_jets = f["INFO/n_jets"][:].astype(np.int64) if "INFO/n_jets" in f else mask.sum(1)
    return {"source_data": source, "source_mask": mask, "global_data": global_data, "targets": targets,
            "labels": labels, "weights": weights, "n_jets": n_jets}
