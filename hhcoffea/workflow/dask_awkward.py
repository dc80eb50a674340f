"""The ``dask-awkward`` executor: the same processor through coffea's dask path, histograms
filled with hist.dask.

Each dataset's files are read with ``NanoEventsFactory.from_root(..., mode="dask")`` (uproot.dask
underneath), one dask-awkward partition per Runner chunk (the Runner's entry ranges). The eager
processor -- numpy, awkward and numba on whole columns, no per-event Python -- runs once per
partition through ``dask_awkward.map_partitions``: ``HH4bProcessor.fill_chunk`` fills a
:class:`~hhcoffea.histograms.FillRecorder` instead of histograms, and the recorded fills become
the partition's fill columns (one list of rows per histogram, categories as integer codes). Every
histogram the processor books, the cutflow and the event counts are then ``hist.dask.Hist``
histograms filled from those dask-awkward columns, computed together once at the end and
relabelled with the booked categories. The processor's fill calls are the one description of
what is filled: the Runner path gives them booked histograms, this path a recorder.

A partition sees the metadata a Runner chunk sees (dataset metadata, ``filename``,
``entrystart``, ``fileuuid``, ...), so per-event random draws (truth tagging) are identical. The
cluster is the job's (LocalCluster of ``workers``, ``address``, or ``cluster``).
"""

from __future__ import annotations

__all__ = ["BOOKKEEPING", "chunk_steps", "dask_fill_graph", "fills_meta", "partition_fills", "run_dask_awkward"]

#: internal histograms beside the processor's: the cutflow cells and the event counters
BOOKKEEPING = ("_cutflow", "_events")
_COUNTERS = ("events_in", "nonfinite_kinematics")
_QUANTITIES = ("events", "weight")  # a cutflow cell is [events, sum of weights]


def chunk_steps(n_events: int, chunksize: int) -> list[list[int]]:
    """Entry ranges of coffea's Runner for one file: round(n / chunksize) chunks of equal size."""
    if n_events <= 0:
        return [[0, 0]]  # the Runner processes an empty file as one empty chunk too
    n_chunks = max(round(n_events / chunksize), 1)
    size = -(-n_events // n_chunks)  # ceil, as coffea's preprocessing
    return [[start, min(start + size, n_events)] for start in range(0, n_events, size)]


def bookkeeping_histograms(datasets, pairers) -> dict:
    """Empty ``_cutflow`` (dataset, pairer, analysis, step, quantity) and ``_events`` (dataset,
    counter) histograms: the processor's counts as histogram rows, so they reduce like the rest."""
    import hist

    from hhcoffea.processors.hh4b import CUTFLOW_STEPS

    steps = list(dict.fromkeys(s for order in CUTFLOW_STEPS.values() for s in order))
    dataset_axis = hist.axis.StrCategory(list(datasets), name="dataset")
    return {
        "_cutflow": hist.Hist(dataset_axis, hist.axis.StrCategory(list(pairers), name="pairer"),
                              hist.axis.StrCategory(list(CUTFLOW_STEPS), name="analysis"),
                              hist.axis.StrCategory(steps, name="step"),
                              hist.axis.StrCategory(list(_QUANTITIES), name="quantity"), storage=hist.storage.Weight()),
        "_events": hist.Hist(dataset_axis, hist.axis.StrCategory(list(_COUNTERS), name="counter"),
                             storage=hist.storage.Weight()),
    }


def _record_bookkeeping(recorder, out: dict, dataset: str) -> None:
    """The chunk's cutflow cells and counters as fill rows (a loop over cells, not events)."""
    cutflow = recorder["_cutflow"]
    for pairer, flows in out["cutflow"][dataset].items():
        for analysis, steps in flows.items():
            for step, cell in steps.items():
                for quantity, value in zip(_QUANTITIES, cell):
                    cutflow.fill(dataset=dataset, pairer=pairer, analysis=analysis, step=step, quantity=quantity,
                                 weight=float(value))
    counters = {"events_in": out["events_in"][dataset], **out["excluded"][dataset]}
    for counter in _COUNTERS:
        recorder["_events"].fill(dataset=dataset, counter=counter, weight=float(counters[counter]))


def _bookkeeping_output(computed: dict, booked: dict) -> dict:
    """``cutflow``, ``events_in`` and ``excluded`` in the Runner's output form."""
    import numpy as np

    from hhcoffea.processors.hh4b import CUTFLOW_STEPS

    flow, counts = computed["_cutflow"], computed["_events"]
    steps = list(booked["_cutflow"].axes["step"])
    values = flow.values()  # dataset, pairer, analysis, step, quantity
    cutflow, events_in, excluded = {}, {}, {}
    for i, dataset in enumerate(booked["_cutflow"].axes["dataset"]):
        cutflow[dataset] = {
            pairer: {analysis: {step: np.array(values[i, j, k, steps.index(step)], dtype=np.float64)
                                for step in CUTFLOW_STEPS[analysis]}
                     for k, analysis in enumerate(booked["_cutflow"].axes["analysis"])}
            for j, pairer in enumerate(booked["_cutflow"].axes["pairer"])}
        events_in[dataset] = int(round(counts.values()[i, 0]))
        excluded[dataset] = {"nonfinite_kinematics": int(round(counts.values()[i, 1]))}
    return {"cutflow": cutflow, "events_in": events_in, "excluded": excluded}


def partition_fills(recorder, booked: dict):
    """One partition's fill columns: a length-1 awkward record, one field per histogram holding
    its rows (:meth:`FillRecorder.columns`)."""
    import awkward as ak

    from ..histograms import fill_fields

    fields = {}
    for name, h in booked.items():
        columns = recorder.columns(name, h)
        rows = ak.zip({f: columns[f] for f in fill_fields(h)}, depth_limit=1)
        fields[name] = ak.unflatten(rows, [len(rows)])
    return ak.zip(fields, depth_limit=1)


def fills_meta(booked: dict):
    """The typetracer of :func:`partition_fills` (dask-awkward's meta; typetracers do not pickle,
    so it is made where needed)."""
    import awkward as ak

    from ..histograms import FillRecorder

    return ak.Array(partition_fills(FillRecorder(), booked).layout.to_typetracer(forget_length=True))


def _touch_model_branches(events, processor, dataset: str, metadata: dict) -> None:
    """Typetracer pass: touch the branches one chunk of the processor can read, so uproot reads
    those and no others: every jet field and the weight; truth matching's generator fields (signal
    only); MET and the lepton counts when a selection scores events (scoring.features); the tag
    rule's discriminant branch."""
    import awkward as ak

    from hhcoffea.events import event_model
    from hhcoffea.processors.hh4b import SIGNAL_PROCESSES, TRUTH_MATCHING_FIELDS

    model = event_model(events, with_truth=metadata.get("process") in SIGNAL_PROCESSES)
    layout = model.layout
    jets, jet_fields = layout.collections["jets"]
    wanted = [(jets, f) for f in jet_fields.values()] + [layout.scalars["weight"]]
    if model.has_truth:
        coll, fields = layout.collections["genpart"]
        wanted += [(coll, fields[f]) for f in TRUTH_MATCHING_FIELDS]
    if processor.scoring is not None:
        wanted += [layout.scalars["met_pt"], layout.scalars["met_phi"]]
        for internal in ("electrons", "muons"):  # counts only: the field the model takes offsets from
            coll, fields = layout.collections[internal]
            wanted.append((coll, next(iter(fields.values()))))
    btag = processor.btagging.for_dataset(dataset) if processor.btagging is not None else None
    if btag is not None and btag.working_point is not None and btag.rule(layout.name).branch:
        wanted.append((jets, btag.rule(layout.name).branch))
    for coll, f in wanted:
        try:
            if layout.name == "delphes":
                column = events[coll] if f is None else events[coll][f]
            else:
                column = events[coll if f is None else f"{coll}_{f}"]
        except (AttributeError, KeyError, ValueError):
            continue  # absent here: reading it fails in the chunk with the model's own message
        ak.typetracer.touch_data(column)


class _PartitionInfo:
    """One partition's file and entry range, as a length-1 record (``dask_awkward.from_map``)."""

    def __call__(self, info: dict):
        import awkward as ak

        return ak.Array([info])


class _PartitionFiller:
    """``map_partitions`` function: events (+ their partition info) -> fill columns."""

    def __init__(self, processor, booked: dict, dataset: str, metadata: dict):
        self.processor, self.booked, self.dataset, self.metadata = processor, booked, dataset, metadata

    def __call__(self, events, info):
        import awkward as ak

        from ..histograms import FillRecorder

        if ak.backend(events) == "typetracer":
            _touch_model_branches(events, self.processor, self.dataset, self.metadata)
            ak.typetracer.touch_data(info)
            return fills_meta(self.booked)
        # the metadata of the matching Runner chunk (coffea's processor.executor.run)
        (where,) = ak.to_list(info)
        metadata = {"dataset": self.dataset, **where, **self.metadata}
        events = ak.with_parameter(events, "metadata", metadata)
        recorder = FillRecorder()
        out = self.processor.fill_chunk(events, recorder, metadata)
        _record_bookkeeping(recorder, out, self.dataset)
        return partition_fills(recorder, self.booked)


def dask_fill_graph(fileset, processor, chunksize: int, quick_chunks: int | None = None):
    """``(booked, dask_histograms)``: the processor's booked histograms (plus the bookkeeping
    ones) for every dataset of ``fileset``, and a ``hist.dask.Hist`` per name, filled (lazily)
    from the dask-awkward fill columns of every partition (the first ``quick_chunks`` per dataset
    when given)."""
    import dask_awkward as dak
    import hist.dask as hda
    from coffea.nanoevents import NanoEventsFactory

    from ..events import AutoSchema
    from ..histograms import coded_axes, fill_fields

    booked = processor.book(list(fileset.coffea))
    booked.update(bookkeeping_histograms(list(fileset.coffea), list(processor.pairers)))
    meta = fills_meta(booked)
    n_events = {info.path: info.n_events for info in fileset.files}
    uuids = {info.path: info.uuid for info in fileset.files}  # read once, when the files were inspected
    columns = []
    for name, entry in fileset.coffea.items():
        files, infos = {}, []
        for path, tree in entry["files"].items():
            steps = chunk_steps(n_events[path], chunksize)
            files[path] = {"object_path": tree, "steps": steps}
            infos += [{"filename": path, "treename": tree, "entrystart": int(start), "entrystop": int(stop),
                       "fileuuid": uuids[path]} for start, stop in steps]
        events = NanoEventsFactory.from_root(
            files, schemaclass=AutoSchema, mode="dask", metadata={"dataset": name, **entry["metadata"]},
        ).events()
        info = dak.from_map(_PartitionInfo(), infos, label=f"chunk-info-{name}")
        if quick_chunks is not None:
            events, info = events.partitions[:quick_chunks], info.partitions[:quick_chunks]
        filler = _PartitionFiller(processor, booked, name, dict(entry["metadata"]))
        columns.append(dak.map_partitions(filler, events, info, meta=meta, label=f"hh-fills-{name}"))
    fills = columns[0] if len(columns) == 1 else dak.concatenate(columns)
    histograms = {}
    for name, h in booked.items():
        dask_hist = hda.Hist(*coded_axes(h), storage=h.storage_type())
        histograms[name] = dask_hist.fill(**{f: dak.flatten(fills[name][f], axis=1) for f in fill_fields(h)})
    return booked, histograms


def _relabelled(booked, coded):
    """The computed integer-coded histogram as the booked one (same bins, category labels)."""
    h = booked.copy()
    h.view(flow=True)[...] = coded.view(flow=True)
    return h


def run_dask_awkward(job, fileset, processor, *, quick: bool = False):
    """``(output, workers_lost)``: the processor over every partition of every dataset, its
    histograms filled by hist.dask and computed once."""
    import dask

    from .executors import RunMonitor, dask_client
    from .job import JobError

    cfg = job.config["executor"]
    if processor.feature_export is not None:
        raise JobError(f"job {job.path}: the dask-awkward executor does not collect feature tables; "
                         "use executor iterative, futures or dask")
    booked, histograms = dask_fill_graph(fileset, processor, int(cfg["chunksize"]),
                                         int(job.config["quick_chunks"]) if quick else None)
    with dask_client(cfg) as client:
        monitor = RunMonitor(client)
        (computed,) = dask.compute(histograms)
        lost = monitor.workers_lost()
    output = {"histograms": {name: _relabelled(booked[name], computed[name])
                             for name in booked if name not in BOOKKEEPING}}
    output.update(_bookkeeping_output(computed, booked))
    return output, lost
