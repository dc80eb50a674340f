"""The ``dask-awkward`` executor: the same processor through coffea's dask path.

Each dataset's files are read with ``NanoEventsFactory.from_root(..., mode="dask")`` (uproot.dask
underneath: one dask-awkward partition per chunk, with the Runner's chunk boundaries, so every
partition holds the events of the matching Runner chunk). The eager processor -- numpy and
awkward on whole columns, no per-event Python -- runs once per partition (``to_delayed``), and
the per-partition outputs are summed in a tree on the dask cluster, so the histograms equal the
Runner's. The cluster is the job's (LocalCluster of ``workers``, ``address``, or ``cluster``).
"""

from __future__ import annotations

__all__ = ["chunk_steps", "run_dask_awkward"]

#: outputs summed per reduction task
FAN_IN = 8


def chunk_steps(n_events: int, chunksize: int) -> list[list[int]]:
    """Entry ranges of coffea's Runner for one file: round(n / chunksize) chunks of equal size."""
    if n_events <= 0:
        return [[0, 0]]  # the Runner processes an empty file as one empty chunk too
    n_chunks = max(round(n_events / chunksize), 1)
    size = -(-n_events // n_chunks)  # ceil, as coffea's preprocessing
    return [[start, min(start + size, n_events)] for start in range(0, n_events, size)]


def _process(processor, events):
    return processor.process(events)


def _accumulate(*outputs):
    from coffea.processor import accumulate

    return accumulate(outputs)


def run_dask_awkward(job, fileset, processor, *, quick: bool = False):
    """``(output, workers_lost)``: the processor over every partition of every dataset."""
    import dask
    from coffea.nanoevents import NanoEventsFactory

    from ..events import AutoSchema
    from .executors import RunMonitor, dask_client

    cfg = job.config["executor"]
    n_events = {info.path: info.n_events for info in fileset.files}
    tasks = []
    processor_node = dask.delayed(processor, pure=True)
    for name, entry in fileset.coffea.items():
        files = {}
        for path, tree in entry["files"].items():
            steps = chunk_steps(n_events[path], int(cfg["chunksize"]))
            if steps:
                files[path] = {"object_path": tree, "steps": steps}
        if not files:
            continue
        events = NanoEventsFactory.from_root(
            files, schemaclass=AutoSchema, mode="dask", metadata={"dataset": name, **entry["metadata"]},
        ).events()
        partitions = events.to_delayed()
        if quick:
            partitions = partitions[: int(job.config["quick_chunks"])]
        tasks.extend(dask.delayed(_process)(processor_node, part) for part in partitions)
    if not tasks:
        raise ValueError(f"job {job.path}: no events to process")
    while len(tasks) > 1:  # a tree: no single task holds every output at once
        tasks = [dask.delayed(_accumulate)(*tasks[i:i + FAN_IN]) for i in range(0, len(tasks), FAN_IN)]
    with dask_client(cfg) as client:
        monitor = RunMonitor(client)
        (output,) = dask.compute(tasks[0])
        lost = monitor.workers_lost()
    return output, lost
