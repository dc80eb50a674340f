"""The dask-awkward executor (hhcoffea.workflow.dask_awkward): the processor per partition of
NanoEvents in dask mode, every histogram and the cutflow filled through hist.dask, on a
LocalCluster of 2 worker processes, against coffea's iterative Runner on the same job."""

from __future__ import annotations

import hist
import numpy as np
import pytest
import uproot
import yaml
from layouts import nanoaod_tree, toy_events, write_nanoaod

from hhcoffea.histograms import FillRecorder, book, coded_axes, fill_fields
from hhcoffea.workflow.job import load_job
from hhcoffea.workflow.runner import run_job


def _assert_same_output(runner: dict, dak: dict) -> None:
    """Every histogram (axes with category order, values, variances) and every cutflow cell."""
    assert list(dak["histograms"]) == list(runner["histograms"])
    for name, h in runner["histograms"].items():
        other = dak["histograms"][name]
        assert other.axes == h.axes, name  # categories in the same order
        np.testing.assert_allclose(other.values(flow=True), h.values(flow=True), rtol=1e-12, atol=1e-300, err_msg=name)
        if h.variances() is not None:
            np.testing.assert_allclose(other.variances(flow=True), h.variances(flow=True), rtol=1e-12, atol=1e-300,
                                       err_msg=name)
    assert dak["events_in"] == runner["events_in"]
    assert dak["excluded"] == runner["excluded"]
    assert dak["cutflow"].keys() == runner["cutflow"].keys()
    for d, by_pairer in runner["cutflow"].items():
        assert dak["cutflow"][d].keys() == by_pairer.keys()
        for p, flows in by_pairer.items():
            for analysis, steps in flows.items():
                assert list(dak["cutflow"][d][p][analysis]) == list(steps)
                for step, cell in steps.items():
                    np.testing.assert_allclose(dak["cutflow"][d][p][analysis][step], cell, rtol=1e-12, atol=0,
                                               err_msg=f"{d} {p} {analysis} {step}")


def _toy_job(tmp_path) -> str:
    write_nanoaod(tmp_path / "a.root", toy_events(1500, seed=21))
    write_nanoaod(tmp_path / "b.root", toy_events(700, seed=22))
    untagged = toy_events(500, seed=23)
    untagged["jets"][1]["btag"][:] = 0  # no event passes four-tag in any of its chunks
    write_nanoaod(tmp_path / "untagged.root", untagged)
    config = {
        "output": "out", "luminosity": 100.0,
        "datasets": {
            "sig": {"files": [str(tmp_path / "a.root")], "metadata": {"process": "resonant", "xsec_fb": 2.0, "n_generated": 1500}},
            "bkg": {"files": [str(tmp_path / "b.root")], "metadata": {"process": "qcd", "xsec_fb": 10.0, "n_generated": 700}},
            "untagged": {"files": [str(tmp_path / "untagged.root")],
                         "metadata": {"process": "qcd", "xsec_fb": 5.0, "n_generated": 500}},
        },
        "pairers": {"min_dr": {}, "chi2": {}},
        "histograms": {"m_hh": {"bins": {"n": 20, "lo": 200.0, "hi": 1200.0}, "systematics": ["jes"]},
                       "m_h1_m_h2": {"systematics": ["jes"]}},
        "systematics": {"jes": {"size": 0.05}},
        "executor": {"name": "iterative", "chunksize": 400, "workers": 2},
        "quick_chunks": 1,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_dask_awkward_equals_the_runner_with_an_untagged_dataset_and_quick_mode(tmp_path):
    path = _toy_job(tmp_path)
    runner = run_job(load_job(path), status=False).output
    dak = run_job(load_job(path, {"executor": {"name": "dask-awkward"}}), status=False).output
    _assert_same_output(runner, dak)
    assert runner["events_in"] == {"sig": 1500, "bkg": 700, "untagged": 500}
    # the untagged dataset ran through (its bins booked, every cutflow step after four-tag empty)
    assert runner["cutflow"]["untagged"]["chi2"]["resonant"]["four_tag"][0] == 0
    assert runner["cutflow"]["untagged"]["chi2"]["resonant"]["all"][0] == 500
    m_hh = runner["histograms"]["m_hh"]
    assert list(m_hh.axes["dataset"]) == ["sig", "bkg", "untagged"]
    assert list(m_hh.axes["systematic"]) == ["nominal", "jes_up", "jes_down"]
    assert m_hh[{"dataset": "sig", "systematic": "jes_up"}].values().sum() > 0
    assert m_hh[{"dataset": "untagged"}].values().sum() == 0
    assert runner["histograms"]["pairing_truth"][{"dataset": "sig"}].values().sum() > 0

    # quick: quick_chunks partitions per dataset, exactly the Runner's first chunks
    quick_runner = run_job(load_job(path), quick=True, status=False).output
    quick_dak = run_job(load_job(path, {"executor": {"name": "dask-awkward"}}), quick=True, status=False).output
    assert quick_runner["events_in"] == {"sig": 375, "bkg": 350, "untagged": 500}  # round(n / 400) equal chunks
    _assert_same_output(quick_runner, quick_dak)


def test_truth_tagging_and_score_selections_equal_the_runner(tmp_path):
    """Per-event truth-tag draws depend on the chunk's file and entries (the partition metadata);
    b-tagging weight variations, the DNN's score histograms and its selection region all go
    through the recorder too."""
    config = {
        "name": "dak_btag", "output": "out",
        "samples": {"directory": "data", "seed": 5, "generate": {
            "X500": {"process": "resonant", "m_x": 500.0, "n_events": 4000},
            "qcd": {"process": "qcd", "n_events": 4000}}},
        "btagging": {"working_point": "MV2c10_70", "efficiency": "eff.json", "method": "truth_tag"},
        "pairers": {"min_dr": {}},
        "histograms": {"m_hh": {"bins": {"n": 10, "lo": 200, "hi": 1200}, "systematics": ["btag_bc", "btag_light"]}},
        "scorers": {"dnn": {"options": {"model": "resonant"}}},
        "selections": {"dnn_min_dr": {"pairer": "min_dr", "scorer": "dnn", "threshold": 0.5}},
        "executor": {"name": "iterative", "chunksize": 1500, "workers": 2},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    runner = run_job(load_job(path), status=False).output  # also measures the efficiency maps
    dak = run_job(load_job(path, {"executor": {"name": "dask-awkward"}}), status=False).output
    _assert_same_output(runner, dak)
    m_hh = runner["histograms"]["m_hh"]
    assert list(m_hh.axes["systematic"]) == ["nominal", "btag_bc_up", "btag_bc_down", "btag_light_up", "btag_light_down"]
    assert m_hh[{"dataset": "X500", "region": "dnn_min_dr", "systematic": "btag_bc_up"}].values().sum() > 0
    assert runner["histograms"]["score"][{"dataset": "X500"}].values().sum() > 0


def test_recorder_replays_the_fills_and_codes_categories():
    booked = book({"m_hh": (4, 0.0, 400.0)}, datasets=["sig", "bkg"], pairers=["min_dr"],
                  systematics={"m_hh": ["jes_up"]})
    direct = book({"m_hh": (4, 0.0, 400.0)}, datasets=["sig", "bkg"], pairers=["min_dr"],
                  systematics={"m_hh": ["jes_up"]})
    recorder = FillRecorder()
    calls = [
        {"dataset": "bkg", "region": "signal", "pairer": "min_dr", "systematic": "nominal",
         "m_hh": np.array([50.0, 150.0, 350.0]), "weight": np.array([1.0, 2.0, 3.0])},
        {"dataset": "sig", "region": "control", "pairer": "min_dr", "systematic": np.array(["jes_up", "nominal"]),
         "m_hh": np.array([120.0, 130.0]), "weight": np.array([0.5, 0.25])},
    ]
    for kwargs in calls:
        recorder["m_hh"].fill(**kwargs)
        direct["m_hh"].fill(**kwargs)
    recorder.replay(booked)
    assert np.array_equal(booked["m_hh"].view(flow=True), direct["m_hh"].view(flow=True))

    columns = recorder.columns("m_hh", booked["m_hh"])
    assert list(columns) == fill_fields(booked["m_hh"]) == ["dataset", "region", "pairer", "systematic", "m_hh", "weight"]
    assert columns["dataset"].tolist() == [1, 1, 1, 0, 0]  # positions on the booked axis
    assert columns["region"].tolist() == [2, 2, 2, 3, 3]  # signal, control in REGIONS
    assert columns["systematic"].tolist() == [0, 0, 0, 1, 0]
    assert columns["dataset"].dtype == np.int32 and columns["m_hh"].tolist() == [50.0, 150.0, 350.0, 120.0, 130.0]
    # the same columns into integer-coded axes give the same bins
    coded = hist.Hist(*coded_axes(booked["m_hh"]), storage=hist.storage.Weight())
    coded.fill(**columns)
    assert np.array_equal(coded.view(flow=True), direct["m_hh"].view(flow=True))

    bad = FillRecorder()
    bad["m_hh"].fill(dataset="ttbar", region="signal", pairer="min_dr", systematic="nominal", m_hh=np.ones(1),
                     weight=np.ones(1))
    with pytest.raises(ValueError, match=r"histogram 'm_hh': dataset 'ttbar' was not booked; booked: \['sig', 'bkg'\]"):
        bad.columns("m_hh", booked["m_hh"])


def test_only_the_event_models_branches_are_read(tmp_path):
    """Column projection through the typetracer pass: an unrelated branch stays on disk."""
    import dask_awkward as dak

    from hhcoffea.workflow.dask_awkward import dask_fill_graph
    from hhcoffea.workflow.runner import build_fileset, make_processor

    ev = toy_events(300, seed=4)
    with uproot.recreate(tmp_path / "x.root") as f:
        f.mktree("Events", {**nanoaod_tree(ev), "unrelated": np.arange(300.0)})
    config = {"output": "out", "datasets": {"qcd": {"files": [str(tmp_path / "x.root")], "metadata": {"process": "qcd"}}},
              "pairers": {"min_dr": {}}, "executor": {"name": "dask-awkward", "chunksize": 100}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(config))
    job = load_job(tmp_path / "job.yaml")
    fileset = build_fileset(job, {"qcd": config["datasets"]["qcd"]})
    _, histograms = dask_fill_graph(fileset, make_processor(job), 100)
    assert all(type(h).__module__.startswith("hist.dask") for h in histograms.values())
    (columns,) = dak.report_necessary_columns(*histograms.values()).values()
    assert "unrelated" not in columns and "GenPart_pdgId" not in columns  # no truth for qcd
    assert "MET_pt" not in columns and "Electron_pt" not in columns  # read only when a selection scores
    assert {"Jet_pt", "Jet_eta", "Jet_btag", "genWeight"} <= set(columns)


def test_the_processor_runs_once_per_partition(tmp_path, monkeypatch):
    """All histograms are computed together: the per-partition work is shared, not redone per
    histogram; quick mode maps only quick_chunks partitions per dataset."""
    import dask

    from hhcoffea.processors.hh4b import HH4bProcessor
    from hhcoffea.workflow.dask_awkward import dask_fill_graph
    from hhcoffea.workflow.runner import build_fileset, make_processor, resolve_datasets

    job = load_job(_toy_job(tmp_path))
    fileset = build_fileset(job, resolve_datasets(job, {}))
    chunks = []
    fill_chunk = HH4bProcessor.fill_chunk

    def counted(self, events, histograms, metadata=None):
        chunks.append((metadata["dataset"], metadata["entrystart"], metadata["entrystop"], len(events)))
        return fill_chunk(self, events, histograms, metadata)

    monkeypatch.setattr(HH4bProcessor, "fill_chunk", counted)
    for quick_chunks, expected in ((None, 4 + 2 + 1), (1, 3)):
        chunks.clear()
        _, histograms = dask_fill_graph(fileset, make_processor(job), 400, quick_chunks)
        dask.compute(histograms, scheduler="sync")  # in this process, so the calls are seen
        assert len(chunks) == len(set(chunks)) == expected, chunks
        assert all(stop - start == n for _, start, stop, n in chunks)
    assert sorted(chunks) == [("bkg", 0, 350, 350), ("sig", 0, 375, 375), ("untagged", 0, 500, 500)]


def test_feature_export_is_refused_in_one_line(tmp_path):
    from hhcoffea.workflow.job import JobError

    job = load_job(_toy_job(tmp_path), {"executor": {"name": "dask-awkward"}})
    with pytest.raises(JobError, match=r"job\.yaml: the dask-awkward executor does not collect feature tables"):
        run_job(job, status=False, configure=lambda proc: setattr(proc, "feature_export", "min_dr"))
