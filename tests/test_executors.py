"""The dask-awkward executor gives the Runner's histograms; batch-cluster job scripts carry the
job's settings (no batch system here: the rendered script is checked)."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from layouts import toy_events, write_nanoaod

from hhcoffea.workflow.dask_awkward import chunk_steps
from hhcoffea.workflow.executors import jobqueue_cluster
from hhcoffea.workflow.job import load_job
from hhcoffea.workflow.runner import run_job


def test_chunk_steps_are_the_runners():
    assert chunk_steps(1000, 300) == [[0, 334], [334, 668], [668, 1000]]  # round(1000/300) = 3 chunks
    assert chunk_steps(10, 100) == [[0, 10]]
    assert chunk_steps(0, 100) == [[0, 0]]


def test_dask_awkward_matches_the_runner(tmp_path):
    write_nanoaod(tmp_path / "a.root", toy_events(1500, seed=21))
    write_nanoaod(tmp_path / "b.root", toy_events(700, seed=22))
    config = {
        "output": "out", "luminosity": 100.0,
        "datasets": {"sig": {"files": [str(tmp_path / "a.root")],
                             "metadata": {"process": "resonant", "xsec_fb": 2.0, "n_generated": 1500}},
                     "bkg": {"files": [str(tmp_path / "b.root")],
                             "metadata": {"process": "qcd", "xsec_fb": 10.0, "n_generated": 700}}},
        "pairers": {"min_dr": {}, "chi2": {}},
        "histograms": {"m_hh": {"bins": {"n": 20, "lo": 200.0, "hi": 1200.0}, "systematics": ["jes"]}},
        "systematics": {"jes": {"size": 0.05}},
        "executor": {"name": "iterative", "chunksize": 400, "workers": 2},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    runner = run_job(load_job(path), status=False).output
    dak = run_job(load_job(path, {"executor": {"name": "dask-awkward"}}), status=False).output
    assert dak["events_in"] == runner["events_in"] == {"sig": 1500, "bkg": 700}
    for name, h in runner["histograms"].items():
        other = dak["histograms"][name]
        assert h.axes == other.axes, name
        np.testing.assert_allclose(other.values(flow=True), h.values(flow=True), rtol=1e-12, atol=0, err_msg=name)
        if h.variances() is not None:
            np.testing.assert_allclose(other.variances(flow=True), h.variances(flow=True), rtol=1e-12, atol=0)
    assert runner["histograms"]["m_hh"][{"dataset": "sig"}].values().sum() > 0
    for d, by_pairer in runner["cutflow"].items():
        for p, flows in by_pairer.items():
            for analysis, steps in flows.items():
                for step, value in steps.items():
                    assert dak["cutflow"][d][p][analysis][step][0] == value[0]


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
