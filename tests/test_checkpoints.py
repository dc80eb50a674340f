"""Interrupted runs: checkpoints keyed by the job's physics settings, resume after SIGKILL of the
main process, and outputs replaced as a whole folder."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import yaml
from layouts import toy_events, write_nanoaod

from hhcoffea.workflow.job import load_job
from hhcoffea.workflow.output import write_outputs
from hhcoffea.workflow.runner import run_job

N_EVENTS = 6000


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    write_nanoaod(d / "toy.root", toy_events(N_EVENTS, seed=12))
    return d


def _job(directory, name="job", checkpoint="ckpt", chunksize=200, **changes):
    config = {
        "name": "ckpt", "output": str(directory / f"out_{name}"), "luminosity": 100.0,
        "datasets": {"toy": {"files": [str(directory / "toy.root")],
                             "metadata": {"process": "resonant", "xsec_fb": 1.0, "n_generated": N_EVENTS}}},
        "pairers": {"min_dr": {}, "chi2": {}},
        "histograms": {"m_hh": {"bins": {"n": 20, "lo": 200.0, "hi": 1200.0}}},
        "executor": {"name": "iterative", "chunksize": chunksize,
                     "checkpoint": str(directory / checkpoint) if checkpoint else None},
        **changes,
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _assert_same(a, b):
    for name, h in a["histograms"].items():
        assert h.axes == b["histograms"][name].axes, name
        np.testing.assert_allclose(h.values(flow=True), b["histograms"][name].values(flow=True), rtol=1e-12, atol=0,
                                   err_msg=name)
    assert a["events_in"] == b["events_in"]


def test_a_changed_job_never_reuses_old_chunks(data):
    first = run_job(load_job(_job(data, "a", checkpoint="ckpt_a")), status=False)
    assert (first.chunks_reused, first.chunks_computed) == (0, 30)
    again = run_job(load_job(_job(data, "a", checkpoint="ckpt_a")), status=False)
    assert (again.chunks_reused, again.chunks_computed, again.events_reused) == (30, 0, N_EVENTS)
    assert again.events_computed == 0
    _assert_same(first.output, again.output)
    for changes in ({"luminosity": 200.0},
                    {"histograms": {"m_hh": {"bins": {"n": 10, "lo": 200.0, "hi": 1200.0}}}},
                    {"pairers": {"min_dr": {}, "chi2": {"options": {"max_btagged": 5}}}},
                    {"selection": {"jet_pt_min": 45.0}},
                    {"systematics": {"jes": {"size": 0.02}}}):
        changed = run_job(load_job(_job(data, "a", checkpoint="ckpt_a", **changes)), status=False)
        assert changed.chunks_reused == 0, changes
    # the dataset's metadata sets the weights: part of the key too
    path = _job(data, "a", checkpoint="ckpt_a")
    config = yaml.safe_load(path.read_text())
    config["datasets"]["toy"]["metadata"]["xsec_fb"] = 2.0
    path.write_text(yaml.safe_dump(config))
    assert run_job(load_job(path), status=False).chunks_reused == 0


def test_summary_says_what_was_reused(data):
    from hhcoffea.workflow.summary import summary_table

    run_job(load_job(_job(data, "s", checkpoint="ckpt_s")), status=False)
    job = load_job(_job(data, "s", checkpoint="ckpt_s"))
    caption = summary_table(run_job(job, status=False), job).caption
    assert f"chunks reused from checkpoints: 30 ({N_EVENTS:,} events), computed: 0" in caption
    assert caption.startswith("0 events in")  # throughput counts only events computed in this run


@pytest.mark.parametrize("executor", ["iterative", "futures"])
def test_resume_after_the_run_is_killed(data, executor):
    """SIGKILL to the whole run (the main process and, for futures, its workers: what a batch
    system does at the wall-time limit), then the same job again: it reuses exactly the saved
    chunks and its histograms equal an uninterrupted run's."""
    n_chunks = 30 if executor == "iterative" else 60
    chunksize = N_EVENTS // n_chunks
    run = {"executor": {"name": executor, "chunksize": chunksize, "workers": 2,
                        "checkpoint": str(data / f"ckpt_k_{executor}")}}
    reference = run_job(load_job(_job(data, f"ref_{executor}", checkpoint=None, chunksize=chunksize)), status=False)
    path = _job(data, f"k_{executor}", **run)
    proc = subprocess.Popen([sys.executable, "-m", "hhcoffea.cli", "run", str(path), "--no-progress", "--no-plots"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    saved = []
    while proc.poll() is None and len(saved) < 5:
        time.sleep(0.01)
        saved = list((data / f"ckpt_k_{executor}").rglob("*.pkl"))
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((data / f"ckpt_k_{executor}").rglob("*.pkl")))
    assert 5 <= done < n_chunks, done  # killed mid-run
    resumed = run_job(load_job(path), status=False)
    assert resumed.chunks_reused == done and resumed.chunks_computed == n_chunks - done
    assert resumed.events_reused == done * chunksize
    _assert_same(reference.output, resumed.output)


def _digest(folder):
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_killed_write_keeps_the_previous_output(data):
    path = _job(data, "w", checkpoint=None, chunksize=100_000)
    job = load_job(path)
    write_outputs(job, run_job(job, status=False), plots=False)
    (job.output / "notes.txt").write_text("mine")  # not an output: carried over
    before = _digest(job.output)
    # a second run writing plots (slow) is killed as soon as its temporary folder appears
    code = ("import sys; from hhcoffea.workflow.job import load_job; from hhcoffea.workflow.runner import run_job; "
            "from hhcoffea.workflow.output import write_outputs; job = load_job(sys.argv[1], {'luminosity': 50.0}); "
            "r = run_job(job, status=False); print('ran', flush=True); write_outputs(job, r, plots=True)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    while proc.stdout.readline().strip() != "ran":  # coffea prints its preprocessing bar first
        assert proc.poll() is None
    while proc.poll() is None and not list(job.output.parent.glob(f".{job.output.name}.partial-*/cutflow.json")):
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list(job.output.parent.glob(f".{job.output.name}.partial-*")), "killed before it began writing"
    assert _digest(job.output) == before
    # the next complete write replaces the folder as a whole and clears the leftover
    write_outputs(job, run_job(load_job(path, {"luminosity": 50.0}), status=False), plots=False)
    after = _digest(job.output)
    assert after["cutflow.json"] != before["cutflow.json"] and after["notes.txt"] == before["notes.txt"]
    assert not list(job.output.parent.glob(f".{job.output.name}.partial-*"))
