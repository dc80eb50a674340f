"""Inputs nobody here wrote: other Delphes versions, empty files, events without jets, NaN/inf."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import yaml
from layouts import delphes_arrays, toy_events, write_nanoaod

from hhcoffea.events import events_from_arrays
from hhcoffea.pairing import get_pairer
from hhcoffea.processors.hh4b import HH4bProcessor
from hhcoffea.workflow.job import load_job
from hhcoffea.workflow.runner import run_job

META = {"dataset": "toy", "process": "resonant", "xsec_fb": 1.0, "n_generated": 1000}


def _process(events):
    return HH4bProcessor(pairers={"min_dr": get_pairer("min_dr")}).process(events)


def _cutflow(out):
    return {step: v.tolist() for step, v in out["cutflow"]["toy"]["min_dr"]["resonant"].items()}


def test_delphes_file_with_collections_the_schema_cannot_build():
    """A Delphes 3.x file whose Track has no Mass and whose Tower has ET but no PT."""
    ev = toy_events(500, seed=3)
    arrays = delphes_arrays(ev)
    reference = _process(events_from_arrays(arrays, META))
    counts = np.random.default_rng(1).integers(0, 5, ev["n"])
    total = int(counts.sum())
    extra = {
        "Track_size": counts,
        "Track/Track.PT": ak.unflatten(np.full(total, 5.0, np.float32), counts),
        "Track/Track.Eta": ak.unflatten(np.zeros(total, np.float32), counts),
        "Track/Track.Phi": ak.unflatten(np.zeros(total, np.float32), counts),
        "Tower_size": counts,
        "Tower/Tower.ET": ak.unflatten(np.full(total, 3.0, np.float32), counts),
        "Tower/Tower.Eta": ak.unflatten(np.zeros(total, np.float32), counts),
        "Tower/Tower.Phi": ak.unflatten(np.zeros(total, np.float32), counts),
    }
    out = _process(events_from_arrays({**arrays, **extra}, META))
    assert _cutflow(out) == _cutflow(reference)
    assert _cutflow(out)["four_tag"][0] > 0


def test_delphes_file_missing_a_collection_the_model_needs():
    arrays = {k: v for k, v in delphes_arrays(toy_events(50)).items() if not k.startswith("MissingET")}
    with pytest.raises(ValueError, match=r"lacks the 'MissingET' collection"):
        events_from_arrays(arrays, META)
    arrays = {k: v for k, v in delphes_arrays(toy_events(50)).items() if k != "Jet/Jet.Mass"}
    with pytest.raises(ValueError, match=r"lacks branch 'Jet.Mass'"):
        events_from_arrays(arrays, META)


def _with_bad_values(ev: dict) -> tuple[dict, np.ndarray]:
    """NaN pT, inf mass and NaN eta in some jets, a NaN weight in one event; returns the events
    and which events are bad."""
    n_jets, jets = ev["jets"]
    jets = {k: v.copy() for k, v in jets.items()}
    event_of = np.repeat(np.arange(ev["n"]), n_jets)
    rng = np.random.default_rng(4)
    bad_jets = rng.choice(len(event_of), 40, replace=False)
    jets["pt"][bad_jets[:15]] = np.nan
    jets["mass"][bad_jets[15:30]] = np.inf
    jets["eta"][bad_jets[30:]] = np.nan
    weight = ev["weight"].copy()
    weight[7] = np.nan
    bad = np.zeros(ev["n"], dtype=bool)
    bad[event_of[bad_jets]] = True
    bad[7] = True
    return {**ev, "jets": (n_jets, jets), "weight": weight}, bad


def _drop_events(ev: dict, keep: np.ndarray) -> dict:
    out = {"n": int(keep.sum())}
    for key in ("jets", "genpart", "electrons", "muons"):
        counts, fields = ev[key]
        out[key] = (counts[keep], {k: ak.to_numpy(ak.flatten(ak.unflatten(v, counts)[keep])) for k, v in fields.items()})
    for key in ("met_pt", "met_phi", "weight"):
        out[key] = ev[key][keep]
    return out


def _job(tmp_path, files: dict, **extra) -> object:
    config = {
        "name": "bad", "output": "out", "luminosity": 100.0,
        "datasets": {name: {"files": [str(f)], "metadata": {"process": "resonant", "xsec_fb": 2.0, "n_generated": n}}
                     for name, (f, n) in files.items()},
        "pairers": {"min_dr": {}},
        "executor": {"name": "iterative", "chunksize": 97},
        **extra,
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_job(path)


def test_nan_and_inf_kinematics_are_excluded_and_counted(tmp_path):
    clean = toy_events(1500, seed=9)
    dirty, bad = _with_bad_values(clean)
    write_nanoaod(tmp_path / "dirty.root", dirty)
    write_nanoaod(tmp_path / "clean.root", _drop_events(clean, ~bad))
    result = run_job(_job(tmp_path, {"dirty": (tmp_path / "dirty.root", 1500), "clean": (tmp_path / "clean.root", 1500)}),
                     status=False)
    out = result.output
    assert out["excluded"]["dirty"]["nonfinite_kinematics"] == bad.sum() > 30
    assert out["excluded"]["clean"]["nonfinite_kinematics"] == 0
    flow_dirty = out["cutflow"]["dirty"]["min_dr"]["resonant"]
    flow_clean = out["cutflow"]["clean"]["min_dr"]["resonant"]
    assert flow_dirty["all"][0] == 1500 and flow_dirty["finite_kinematics"][0] == 1500 - bad.sum()
    # after the exclusion the dirty file is exactly the clean file without those events
    for step in list(flow_clean)[1:]:
        assert flow_dirty[step][0] == flow_clean[step][0], step
        assert flow_dirty[step][1] == pytest.approx(flow_clean[step][1], rel=1e-12), step
    for name, h in out["histograms"].items():
        if "systematic" not in h.axes.name:
            continue
        a, b = h[{"dataset": "dirty"}], h[{"dataset": "clean"}]
        assert np.all(np.isfinite(a.values(flow=True))), name
        np.testing.assert_allclose(a.values(flow=True), b.values(flow=True), rtol=1e-12, err_msg=name)
    assert flow_clean["four_tag"][0] > 50


def test_empty_file_and_events_without_jets(tmp_path):
    empty = _drop_events(toy_events(10), np.zeros(10, dtype=bool))
    write_nanoaod(tmp_path / "empty.root", empty)
    ev = toy_events(300, seed=2)
    n_jets, jets = ev["jets"]
    jetless = {**ev, "jets": (np.zeros_like(n_jets), {k: v[:0] for k, v in jets.items()})}
    write_nanoaod(tmp_path / "jetless.root", jetless)
    write_nanoaod(tmp_path / "good.root", ev)
    job = _job(tmp_path, {"empty": (tmp_path / "empty.root", 10), "jetless": (tmp_path / "jetless.root", 300),
                          "good": (tmp_path / "good.root", 300)})
    result = run_job(job, status=False)
    out = result.output
    assert out["events_in"].get("empty", 0) == 0
    assert out["events_in"]["jetless"] == 300 and out["events_in"]["good"] == 300
    flow = out["cutflow"]["jetless"]["min_dr"]["nonresonant"]
    assert flow["all"][0] == 300 and flow["four_tag"][0] == 0 and flow["signal_region"][0] == 0
    assert out["cutflow"]["good"]["min_dr"]["nonresonant"]["four_tag"][0] > 0
    # every dataset that was read has its histogram bins, filled or not
    assert {"jetless", "good"} <= set(out["histograms"]["m_hh"].axes["dataset"])
    assert result.output["normalisation"]["empty"]["n_processed"] == 0


def test_normalise_processed_divides_by_the_events_read(tmp_path):
    from hhcoffea.workflow.summary import normalisation_lines

    write_nanoaod(tmp_path / "toy.root", toy_events(1500, seed=5))
    files = {"toy": (tmp_path / "toy.root", 3000)}  # the job says 3000 were generated
    by_generated = run_job(_job(tmp_path, files), status=False)
    by_processed = run_job(_job(tmp_path, files, normalise="processed"), status=False)
    a = by_generated.output["cutflow"]["toy"]["min_dr"]["nonresonant"]
    b = by_processed.output["cutflow"]["toy"]["min_dr"]["nonresonant"]
    for step in a:
        assert b[step][0] == a[step][0]
        assert b[step][1] == pytest.approx(2.0 * a[step][1], rel=1e-12)
    h_a = by_generated.output["histograms"]["m_hh"][{"dataset": "toy"}]
    h_b = by_processed.output["histograms"]["m_hh"][{"dataset": "toy"}]
    np.testing.assert_allclose(h_b.values(), 2.0 * h_a.values(), rtol=1e-12)
    np.testing.assert_allclose(h_b.variances(), 4.0 * h_a.variances(), rtol=1e-12)
    assert by_generated.output["normalisation"]["toy"]["fraction"] == 0.5
    (line,) = normalisation_lines(by_generated)
    assert "n_generated = 3,000" in line and "1,500 events (50.0%)" in line and "normalise: processed" in line
    (line,) = normalisation_lines(by_processed)
    assert "divide by the 1,500 events processed" in line
