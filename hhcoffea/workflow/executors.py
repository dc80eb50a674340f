"""Executors of a job: coffea's iterative, futures and dask executors, dask clusters (local, an
existing scheduler, or a batch system through dask-jobqueue), and what a run lost on the way.

A dask cluster lives for one run. Batch clusters (``executor.cluster``) submit ``jobs`` batch
jobs, or scale between ``adapt.minimum`` and ``adapt.maximum`` with the work; each job runs
``processes`` dask workers on ``cores`` cores.

Every dask worker of a run (LocalCluster, ``address`` or batch) gets
:class:`hhcoffea.workflow.dask_worker.ChunkWorkerSetup`,
which removes two costs that futures workers do not pay (``benchmarks/scale.py`` measures them):
distributed's ``MALLOC_TRIM_THRESHOLD_`` makes glibc give every large numpy array its own mmap
(fresh page faults: a quarter of a worker's CPU as system time), and without frozen long-lived
objects the processor's per-chunk collection is skipped (memory grows with the run). The
LocalCluster's workers are forked from a forkserver that has imported the chunk's modules once
and run without distributed's 10 ms stack sampler (``LOCAL_CLUSTER_CONFIG``).
"""

from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass, field

__all__ = [
    "CHUNK_MODULES", "JOBQUEUE_CLASSES", "LOCAL_CLUSTER_CONFIG", "RunMonitor", "dask_client", "executor_for",
    "executor_with_monitor", "jobqueue_cluster", "start_local_cluster_forkserver",
]

#: modules a chunk uses: a LocalCluster's forkserver imports them before it forks a worker, and every
#: dask worker imports them before it freezes its long-lived objects (dask_worker.ChunkWorkerSetup)
CHUNK_MODULES = ("uproot", "coffea.processor", "coffea.nanoevents", "hhcoffea.events", "hhcoffea.processors.hh4b")
_FORKSERVER_PRELOAD = ["distributed", "numpy", "awkward", *CHUNK_MODULES]

#: executor.cluster.type -> dask-jobqueue class name
JOBQUEUE_CLASSES = {"slurm": "SLURMCluster", "htcondor": "HTCondorCluster", "pbs": "PBSCluster"}

#: dask settings of the LocalCluster a job starts (its nannies read them when they start a worker)
LOCAL_CLUSTER_CONFIG = {
    # the statistical profiler samples the running task's stack every 10 ms on the worker's
    # event loop (and stats source files for line numbers); nobody reads it in a job
    "distributed.worker.profile.enabled": False,
    # workers forked from a forkserver that has imported distributed, coffea and hhcoffea once
    # (a spawned worker imports them afresh, ~2 s of CPU on the critical path of every run); not
    # "fork": forking the run's process, whose other threads may hold locks (fsspec's I/O loop,
    # the scheduler's), hung a dask-awkward run in the test suite. macOS keeps spawn.
    **({"distributed.worker.multiprocessing-method": "forkserver"} if sys.platform.startswith("linux") else {}),
    # periodic bookkeeping of every server (scheduler, nannies, workers): 20 ms event-loop ticks,
    # 100 ms nanny memory polls, 500 ms psutil system monitors cost ~4% of a core in the run's
    # process and as much in the workers, taken from the chunks; a job needs none of it that often
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
}


def _is_local_cluster(cfg: dict) -> bool:
    """The executor section runs on a LocalCluster the job starts (dask_client's last branch)."""
    return cfg.get("name") in ("dask", "dask-awkward") and not cfg.get("address") and not cfg.get("cluster")


def start_local_cluster_forkserver(cfg: dict) -> bool:
    """Start the forkserver a job's LocalCluster forks its workers from, before the run needs it.

    Its imports (``CHUNK_MODULES``, 1-2 s) then run on another core while this process reads the
    job, imports coffea, inspects the inputs and builds the processor, instead of before the first
    chunk. Also imports ``dask.dataframe`` here, beside it: coffea's DaskExecutor imports it at its
    first call (0.4 s, pandas). False, doing nothing, unless ``cfg`` (a job's ``executor``
    section: ``dask`` or ``dask-awkward``) runs on a LocalCluster on Linux.
    """
    if not (_is_local_cluster(cfg) and sys.platform.startswith("linux")):
        return False
    import multiprocessing
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(_FORKSERVER_PRELOAD)
    forkserver.ensure_running()  # returns at once: the server imports in its own process
    with contextlib.suppress(ImportError):
        import dask.dataframe  # noqa: F401
    return True


def _preload_forkserver() -> None:
    """Let the forkserver import what a chunk needs before it forks any worker (once per process,
    and a no-op once the forkserver runs; distributed's own preload list, set on first use, is
    replaced)."""
    from distributed.utils import get_mp_context

    ctx = get_mp_context()  # under LOCAL_CLUSTER_CONFIG: the forkserver context, its preload set once
    if ctx.get_start_method() == "forkserver":
        ctx.set_forkserver_preload(_FORKSERVER_PRELOAD)


def jobqueue_cluster(spec: dict):
    """A dask-jobqueue cluster from a validated ``executor.cluster`` section (not yet scaled)."""
    import dask_jobqueue

    cls = getattr(dask_jobqueue, JOBQUEUE_CLASSES[spec["type"]])
    kwargs = {
        "cores": spec["cores"], "processes": spec["processes"], "memory": spec["memory"],
        "job_script_prologue": list(spec.get("job_script_prologue") or []),
        # the scheduler runs here; its dashboard on any free port
        "scheduler_options": {"dashboard_address": ":0"},
    }
    for key in ("python", "log_directory", "local_directory"):
        if spec.get(key):
            kwargs[key] = spec[key]
    extra = list(spec.get("job_extra_directives") or [])
    if spec["type"] == "htcondor":
        kwargs["disk"] = spec["disk"]
        # HTCondor submit-file lines are key = value pairs
        kwargs["job_extra_directives"] = dict(line.split("=", 1) for line in (e.strip() for e in extra) if "=" in line)
        kwargs["job_extra_directives"] = {k.strip(): v.strip() for k, v in kwargs["job_extra_directives"].items()}
    else:
        kwargs["job_extra_directives"] = extra
        for key in ("walltime", "queue", "account"):
            if spec.get(key):
                kwargs[key] = spec[key]
    return cls(**kwargs)


@contextlib.contextmanager
def dask_client(cfg: dict):
    """A ``distributed.Client`` for the job's executor section: an existing scheduler
    (``address``), a batch cluster (``cluster``) or a LocalCluster of ``workers`` processes.
    Its workers get :class:`~hhcoffea.workflow.dask_worker.ChunkWorkerSetup` (removed again from
    a scheduler the run did not start)."""
    import dask
    from distributed import Client, LocalCluster

    from .dask_worker import ChunkWorkerSetup

    if cfg.get("address"):
        with Client(cfg["address"]) as client:
            client.register_plugin(ChunkWorkerSetup(), name=ChunkWorkerSetup.name)
            try:
                yield client
            finally:
                with contextlib.suppress(Exception):  # a scheduler that went away: nothing to undo
                    client.unregister_worker_plugin(ChunkWorkerSetup.name)
    elif cfg.get("cluster"):
        spec = cfg["cluster"]
        with jobqueue_cluster(spec) as cluster:
            if spec.get("adapt"):
                cluster.adapt(minimum_jobs=spec["adapt"]["minimum"], maximum_jobs=spec["adapt"]["maximum"])
            else:
                cluster.scale(jobs=spec["jobs"])
            with Client(cluster) as client:
                client.register_plugin(ChunkWorkerSetup(), name=ChunkWorkerSetup.name)  # also on workers that join later
                yield client
    else:
        # one thread per worker process: the processor holds the GIL most of the time
        with dask.config.set(LOCAL_CLUSTER_CONFIG):
            _preload_forkserver()
            with LocalCluster(n_workers=int(cfg["workers"]), threads_per_worker=1, processes=True,
                              dashboard_address=None) as cluster, Client(cluster) as client:
                client.register_plugin(ChunkWorkerSetup(), name=ChunkWorkerSetup.name)
                yield client


@dataclass
class RunMonitor:
    """What a run lost: dask workers that left while it ran (their chunks are redone)."""

    client: object | None = None
    start: float = field(default_factory=time.time)

    def workers_lost(self) -> int:
        if self.client is None:
            return 0
        try:
            events = self.client.get_events("all")
        except Exception:  # noqa: BLE001 - a scheduler without the event log: nothing known
            return 0
        return sum(1 for when, msg in events if when >= self.start and isinstance(msg, dict)
                   and msg.get("action") == "remove-worker" and not msg.get("expected"))


@contextlib.contextmanager
def executor_for(job, status: bool = True):
    """The coffea executor the job names; pools and dask clusters live for the run only."""
    with executor_with_monitor(job, status) as (executor, _):
        yield executor


@contextlib.contextmanager
def executor_with_monitor(job, status: bool = True):
    """``(coffea executor, RunMonitor)`` for the job; pools and clusters live for the run only."""
    from coffea import processor

    cfg = job.config["executor"]
    name, workers = cfg["name"], int(cfg.get("workers") or 1)
    if name == "iterative":
        yield processor.IterativeExecutor(status=status, desc="chunks"), RunMonitor()
    elif name == "futures":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # one pool for the whole run (a new pool per call costs about a second); forked workers
        # inherit the imported modules instead of importing coffea and hhcoffea again
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork")) as pool:
            # compression=None: coffea otherwise decompresses and re-compresses the merged output at
            # every merge in this process (~10 ms per chunk), on the cores the workers need; the
            # outputs (~2 MB per chunk) only cross a local pipe
            yield processor.FuturesExecutor(status=status, desc="chunks", pool=pool, workers=workers,
                                            compression=None), RunMonitor()
    else:
        with dask_client(cfg) as client:
            monitor = RunMonitor(client)
            yield processor.DaskExecutor(client=client, status=status, desc="chunks"), monitor
