"""End to end: generated samples -> coffea Runner (iterative, futures, dask) -> outputs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import uproot
import yaml

from hhcoffea.workflow.job import load_job
from hhcoffea.workflow.output import load_histogram, pairing_efficiency
from hhcoffea.workflow.runner import ensure_samples, run_job

JOB = {
    "name": "test",
    "output": "out",
    "luminosity": 139.0,
    "samples": {
        "directory": "data",
        "seed": 5,
        "generate": {
            "X500": {"process": "resonant", "m_x": 500.0, "n_events": 6000},
            "hh_k1": {"process": "nonresonant", "kappa_lambda": 1.0, "n_events": 4000},
            "qcd": {"process": "qcd", "n_events": 20000},
            "ttbar": {"process": "ttbar", "n_events": 6000},
        },
    },
    "pairers": {"min_dr": {}, "dhh": {}},
    "histograms": {"m_hh": {"bins": {"n": 30, "lo": 200.0, "hi": 1400.0}, "systematics": ["jes"]}},
    "systematics": {"jes": {"type": "jet_energy_scale", "size": 0.03}},
    # every sample spans several chunks (coffea splits a file into round(n / chunksize) chunks)
    "executor": {"name": "iterative", "workers": 2, "chunksize": 2500},
    "quick_chunks": 1,
}


def write_job(directory: Path, **changes) -> Path:
    config = json.loads(json.dumps(JOB))
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key].update(value)
        else:
            config[key] = value
    path = directory / "job.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def sample_dir(tmp_path_factory):
    """The job's samples, generated once per test process."""
    directory = tmp_path_factory.mktemp("samples")
    ensure_samples(load_job(write_job(directory, samples={"directory": str(directory / "data")})))
    return directory / "data"


@pytest.fixture(scope="module")
def job_dir(tmp_path_factory, sample_dir):
    directory = tmp_path_factory.mktemp("job")
    write_job(directory, samples={"directory": str(sample_dir)})
    return directory


@pytest.fixture(scope="module")
def iterative_result(job_dir):
    return run_job(load_job(job_dir / "job.yaml"), status=False)


def assert_same_output(a, b):
    for name, h in a.output["histograms"].items():
        other = b.output["histograms"][name]
        assert list(h.axes["dataset"]) and set(h.axes["dataset"]) == set(other.axes["dataset"])
        # categories may grow in a different order: compare slice by slice
        for d in h.axes["dataset"]:
            x, y = h[{"dataset": d}], other[{"dataset": d}]
            if "systematic" in h.axes.name:
                for s in h.axes["systematic"]:
                    xs, ys = x[{"systematic": s}], y[{"systematic": s}]
                    if "pairer" in h.axes.name:
                        for p in h.axes["pairer"]:
                            np.testing.assert_allclose(xs[{"pairer": p}].values(), ys[{"pairer": p}].values(), rtol=1e-12, atol=0)
                            np.testing.assert_allclose(xs[{"pairer": p}].variances(), ys[{"pairer": p}].variances(), rtol=1e-12, atol=0)
            else:
                for p in h.axes["pairer"]:
                    assert np.array_equal(x[{"pairer": p}].values(), y[{"pairer": p}].values())
    for d, by_pairer in a.output["cutflow"].items():
        for p, flows in by_pairer.items():
            for analysis, steps in flows.items():
                for step, value in steps.items():
                    other = b.output["cutflow"][d][p][analysis][step]
                    assert value[0] == other[0]
                    assert value[1] == pytest.approx(other[1], rel=1e-12)


def test_iterative_run_counts_everything(iterative_result):
    out = iterative_result.output
    assert out["events_in"] == {"X500": 6000, "hh_k1": 4000, "qcd": 20000, "ttbar": 6000}
    flow = out["cutflow"]["X500"]["min_dr"]["resonant"]
    counts = [flow[s][0] for s in ("all", "four_tag", "paired", "resonant_pt", "delta_eta_hh", "top_veto", "signal_region")]
    assert counts[0] == 6000 and all(a >= b for a, b in zip(counts, counts[1:]))
    assert counts[-1] > 0.05 * counts[1]  # a resonance at 500 GeV populates the signal region
    # weights: sum over all events = xsec x lumi
    meta = iterative_result.fileset.coffea["X500"]["metadata"]
    assert flow["all"][1] == pytest.approx(meta["xsec_fb"] * 139.0, rel=1e-6)
    # the jes variation moves m_hh up and down
    h = out["histograms"]["m_hh"][{"dataset": "X500", "region": "four_tag", "pairer": "min_dr"}]
    mean = {}
    for s in ("nominal", "jes_up", "jes_down"):
        v = h[{"systematic": s}]
        mean[s] = np.average(v.axes[0].centers, weights=v.values())
    assert mean["jes_down"] < mean["nominal"] < mean["jes_up"]
    # only m_hh opted in to the variation
    assert list(out["histograms"]["h1_pt"].axes["systematic"]) == ["nominal"]


def test_futures_and_dask_match_iterative(job_dir, iterative_result):
    for executor in ("futures", "dask"):
        job = load_job(job_dir / "job.yaml", {"executor": {"name": executor, "workers": 2}})
        result = run_job(job, status=False)
        assert_same_output(iterative_result, result)


def test_min_dr_efficiency_rises_with_mass(tmp_path):
    samples = {f"X{m}": {"process": "resonant", "m_x": float(m), "n_events": 8000} for m in (300, 600, 1000)}
    path = write_job(tmp_path, samples={"directory": "data", "seed": 2, "generate": samples}, pairers={"min_dr": {}}, systematics={},
                     histograms={})
    result = run_job(load_job(path), status=False)
    eff = pairing_efficiency(result.output["histograms"]["pairing_truth"])
    values = [eff[f"X{m}"]["min_dr"]["all"]["event_efficiency"] for m in (300, 600, 1000)]
    assert values[0] < values[1] < values[2], values
    # near threshold the b quarks of one Higgs fly apart, so min-dR does worse than a random
    # choice (1/3); at high mass they are collimated and it almost always works
    assert values[0] < 1 / 3, values
    assert 0.85 < values[2] < 1.0, values


def test_cli_quick_run_writes_outputs_and_provenance(tmp_path, sample_dir):
    write_job(tmp_path, samples={"directory": str(sample_dir)})
    bad = tmp_path / "broken.root"
    bad.write_text("not a ROOT file")
    config = yaml.safe_load((tmp_path / "job.yaml").read_text())
    config["datasets"] = {"extra": {"files": ["broken.root"], "metadata": {"process": "qcd"}}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(config))
    proc = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "run", str(tmp_path / "job.yaml"), "--quick", "--no-progress"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "events/s" in proc.stdout and "files skipped: 1" in proc.stdout
    assert "broken.root: not a readable ROOT file" in proc.stdout
    out = tmp_path / "out"
    assert not (out / "histograms.pkl").exists()  # one serialisation: hists/<name>.pkl
    for name in ("hists/m_hh.pkl", "hists/pairing_truth.pkl", "histograms.root", "cutflow.json", "cutflow.md", "pairing_efficiency.md",
                 "metadata.json", "provenance/job.yaml", "provenance/versions.json", "provenance/git.json",
                 "provenance/inputs.json", "plots/m_hh_signal_min_dr_MV2c10_70.png"):
        assert (out / name).exists(), name
    assert (out / "provenance/job.yaml").read_text() == (tmp_path / "job.yaml").read_text()
    inputs = json.loads((out / "provenance/inputs.json").read_text())
    assert inputs["quick"] is True
    assert inputs["skipped_files"][0]["file"].endswith("broken.root")
    assert {Path(f["path"]).name: f["n_events"] for f in inputs["files"]}["qcd.root"] == 20000
    # quick mode: one chunk of 2500 events per dataset
    assert inputs["events_processed"]["qcd"] == 2500
    versions = json.loads((out / "provenance/versions.json").read_text())
    assert versions["coffea"] and versions["awkward"]
    # one histogram at a time, from the pickle folder and from ROOT
    h = load_histogram(out, "m_hh")
    assert h.axes.name == ("dataset", "region", "pairer", "systematic", "m_hh")
    with uproot.open(out / "histograms.root") as f:
        root_h = f["m_hh/X500/signal/min_dr/nominal"]
        np.testing.assert_allclose(root_h.values(), h[{"dataset": "X500", "region": "signal", "pairer": "min_dr", "systematic": "nominal"}].values())
    table = json.loads((out / "cutflow.json").read_text())
    assert table["X500"]["min_dr"]["resonant"][0]["cut"] == "all"


def test_bad_file_fails_when_asked(tmp_path):
    bad = tmp_path / "broken.root"
    bad.write_text("garbage")
    path = write_job(tmp_path, samples=None, datasets={"x": {"files": ["broken.root"]}}, on_bad_file="fail")
    proc = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "run", str(path), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "broken.root" in lines[0] and "not a readable ROOT file" in lines[0]


def test_resume_from_checkpoints(tmp_path, sample_dir):
    path = write_job(tmp_path, samples={"directory": str(sample_dir)}, executor={"checkpoint": "ckpt"})
    first = run_job(load_job(path), status=False)
    saved = list((tmp_path / "ckpt").rglob("*.pkl"))
    # coffea splits a file into round(n / chunksize) chunks
    assert len(saved) == 2 + 2 + 8 + 2
    second = run_job(load_job(path), status=False)  # loads every chunk from the checkpoints
    assert_same_output(first, second)


def test_dask_scheduler_address(sample_dir, tmp_path, iterative_result):
    """executor.address: the job runs on an existing dask scheduler (here a local one we start)."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        path = write_job(tmp_path, samples={"directory": str(sample_dir)},
                         executor={"name": "dask", "address": cluster.scheduler_address})
        result = run_job(load_job(path), status=False)
    assert_same_output(iterative_result, result)


def test_samples_are_remade_only_when_their_settings_change(tmp_path):
    spec = {"directory": "data", "seed": 1, "generate": {"X": {"process": "resonant", "m_x": 500.0, "n_events": 500}}}
    path = write_job(tmp_path, samples=spec)
    ensure_samples(load_job(path))
    made = (tmp_path / "data" / "X.root").stat().st_mtime_ns
    ensure_samples(load_job(path))
    assert (tmp_path / "data" / "X.root").stat().st_mtime_ns == made  # unchanged: reused
    spec["generate"]["X"]["working_point"] = "DL1r_77"
    ensure_samples(load_job(write_job(tmp_path, samples=spec)))
    meta = json.loads((tmp_path / "data" / "X.root.json").read_text())
    assert meta["working_point"] == "DL1r_77"
