"""The dask-awkward executor gives the Runner's histograms; batch-cluster job scripts carry the
job's settings (no batch system here: the rendered script is checked); dask workers get the
state of a forked futures worker (heap for large arrays, frozen long-lived objects)."""

from __future__ import annotations

import gc
import subprocess
import sys

import pytest
import yaml

from hhcoffea.workflow.dask_awkward import chunk_steps
from hhcoffea.workflow.executors import dask_client, jobqueue_cluster
from hhcoffea.workflow.job import load_job


def test_chunk_steps_are_the_runners():
    assert chunk_steps(1000, 300) == [[0, 334], [334, 668], [668, 1000]]  # round(1000/300) = 3 chunks
    assert chunk_steps(10, 100) == [[0, 10]]
    assert chunk_steps(0, 100) == [[0, 0]]


CLUSTER = {"cores": 4, "processes": 2, "memory": "8GB", "job_script_prologue": ["source /opt/hh/env.sh"],
           "log_directory": "/scratch/hh/logs", "local_directory": "/tmp/hh"}


@pytest.mark.parametrize("kind, settings, expected", [
    ("slurm", {"walltime": "02:00:00", "queue": "short", "account": "hhgroup", "job_extra_directives": ["--constraint=cpu"]},
     ["#SBATCH -p short", "#SBATCH -A hhgroup", "#SBATCH -t 02:00:00", "#SBATCH --cpus-per-task=4",
      "#SBATCH --mem=8G", "#SBATCH --constraint=cpu"]),
    ("pbs", {"walltime": "02:00:00", "queue": "long", "account": "hhgroup"},
     ["#PBS -q long", "#PBS -A hhgroup", "#PBS -l walltime=02:00:00", "#PBS -l select=1:ncpus=4:mem=7630MB"]),
    ("htcondor", {"disk": "4GB", "job_extra_directives": ["+JobFlavour = \"longlunch\""]},
     ["MY.DaskWorkerMemory = 8000000000", "MY.DaskWorkerDisk = 4000000000", "+JobFlavour = \"longlunch\""]),
])
def test_batch_job_script_carries_the_settings(tmp_path, kind, settings, expected):
    job = {"datasets": {"x": {"files": ["x.root"]}},
           "executor": {"name": "dask", "cluster": {"type": kind, **CLUSTER, **settings, "adapt": {"minimum": 0, "maximum": 20}}}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    spec = load_job(path).config["executor"]["cluster"]
    assert spec["adapt"] == {"minimum": 0, "maximum": 20}
    with jobqueue_cluster(spec) as cluster:
        script = cluster.job_script()
    for line in expected:
        assert line in script, (line, script)
    assert "source /opt/hh/env.sh" in script
    assert "--nworkers 2" in script and "--nthreads 2" in script  # 4 cores over 2 worker processes
    assert "--local-directory /tmp/hh" in script


PAGE_FAULTS = """
import os, resource, sys
import numpy as np
from hhcoffea.workflow.dask_worker import heap_for_large_arrays

def faults():
    start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(200):
        a = np.ones(1 << 17)  # 1 MB, like a chunk's jet column
        del a
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start

faults()  # warm up numpy
before = faults()
ok = heap_for_large_arrays()
print(before, faults(), ok)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_heap_for_large_arrays_ends_the_page_faults_of_a_dask_worker():
    """With the nanny's MALLOC_TRIM_THRESHOLD_, every 1 MB array is a fresh mmap (256 page faults);
    once the heap serves them, the freed block is reused."""
    env = {"MALLOC_TRIM_THRESHOLD_": "65536", "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", PAGE_FAULTS], capture_output=True, text=True, check=True, env=env).stdout
    before, after, ok = out.split()
    assert ok == "True"
    assert int(before) > 200 * 200, out  # at least 200 faults per array: the kernel zeroes every page
    assert int(after) < int(before) / 20, out


def _worker_state(dask_worker):
    return {"frozen": gc.get_freeze_count(), "heap": getattr(dask_worker, "hhcoffea_heap_for_large_arrays", None),
            "profiler": "profile" in dask_worker.periodic_callbacks,
            "every_ms": {k: dask_worker.periodic_callbacks[k].callback_time for k in ("tick", "monitor", "memory_monitor")}}


def test_dask_workers_get_the_chunk_setup():
    """A job's LocalCluster: workers without the stack sampler, with the heap for large arrays and
    frozen long-lived objects (so the processor's per-chunk collection runs); on a scheduler the
    job did not start, the plugin is removed again after the run."""
    from distributed import Client, LocalCluster

    with dask_client({"workers": 1}) as client:
        (state,) = client.run(_worker_state).values()
    assert state["frozen"] > 10_000 and state["heap"] is True and state["profiler"] is False, state
    # distributed's defaults are 20 / 500 / 100 ms: a few % of a core taken from the chunks
    assert state["every_ms"] == {"tick": 1000, "monitor": 2000, "memory_monitor": 1000}, state

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as own:
        with dask_client({"address": cluster.scheduler_address}) as client:
            (during,) = client.run(_worker_state).values()
        (after,) = own.run(_worker_state).values()
    assert during["frozen"] > 10_000 and during["heap"] is True, during
    assert during["profiler"] is True  # someone else's workers keep their settings
    assert after["frozen"] == 0, after  # unfrozen by the plugin's teardown


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forkserver workers on Linux only")
def test_local_cluster_forkserver_starts_before_the_cluster():
    """A LocalCluster job starts its workers' forkserver at once (its imports overlap with the
    run's set-up) with the chunk's modules preloaded; other executors start nothing."""
    import multiprocessing
    from multiprocessing import forkserver

    from hhcoffea.workflow.executors import CHUNK_MODULES, start_local_cluster_forkserver

    for cfg in ({"name": "iterative"}, {"name": "futures", "workers": 2}, {"name": "dask", "address": "tcp://h:8786"},
                {"name": "dask", "cluster": {"type": "slurm"}}, {"name": "dask-awkward", "address": "tcp://h:8786"}):
        assert start_local_cluster_forkserver(cfg) is False, cfg
    assert start_local_cluster_forkserver({"name": "dask-awkward", "workers": 2}) is True
    assert start_local_cluster_forkserver({"name": "dask", "workers": 2}) is True
    server = forkserver._forkserver
    assert server._forkserver_pid is not None and server._preload_modules[-len(CHUNK_MODULES):] == list(CHUNK_MODULES)
    # the cluster's workers come from that server: a child forked by it has the modules already
    # (eval, a builtin, so the child imports nothing of this test module to run it)
    ctx = multiprocessing.get_context("forkserver")
    with ctx.Pool(1) as pool:
        loaded = pool.apply(eval, (f"[m in __import__('sys').modules for m in {list(CHUNK_MODULES)!r}]",))
    assert loaded == [True] * len(CHUNK_MODULES)
