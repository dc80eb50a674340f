"""The DNN classifier: ``hhcoffea export features`` tables hold exactly the processor's candidates;
a short training on generated samples beats a random score; the ONNX export gives the torch
network's scores; the ``dnn`` scorer (shipped model, ONNX and torch files) pickles without its
session and runs in a job; the shared session cache."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import yaml

from hhcoffea.scoring.features import NONRESONANT_FEATURES, RESONANT_FEATURES


def _cli(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "hhcoffea.cli", *args], capture_output=True, text=True, timeout=900, cwd=cwd)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Emulated non-resonant hh (kappa_lambda 1 and 5) and QCD, exported with min_dr, and the
    same job's histograms."""
    root = tmp_path_factory.mktemp("dnn")
    job = {
        "name": "dnn", "output": "out", "luminosity": 300.0,
        "samples": {"directory": "data", "seed": 11, "generate": {
            "hh_k1": {"process": "nonresonant", "kappa_lambda": 1.0, "n_events": 12000},
            "hh_k5": {"process": "nonresonant", "kappa_lambda": 5.0, "n_events": 12000},
            "qcd": {"process": "qcd", "n_events": 150000, "working_point": "DL1r_77"},
        }},
        "pairers": {"min_dr": {}, "chi2": {}},
        "executor": {"name": "iterative", "chunksize": 50000},
    }
    (root / "job.yaml").write_text(yaml.safe_dump(job))
    _cli("export", "features", str(root / "job.yaml"), "-o", str(root / "features"), "--pairer", "min_dr", "--no-progress")
    _cli("export", "features", str(root / "job.yaml"), "-o", str(root / "features_h5"), "--format", "hdf5", "--pairer", "min_dr",
         "--no-progress")
    _cli("run", str(root / "job.yaml"), "--no-progress", "--no-plots")
    return root


def test_feature_table_matches_the_processor_candidates(exported):
    from hhcoffea.histograms import load_histogram
    from hhcoffea.scoring.export import read_feature_index, read_feature_table

    index = read_feature_index(exported / "features")
    assert set(index["datasets"]) == {"hh_k1", "hh_k5", "qcd"}
    assert index["nonresonant_features"] == list(NONRESONANT_FEATURES) and len(NONRESONANT_FEATURES) == 21
    assert index["resonant_features"] == list(RESONANT_FEATURES) and len(RESONANT_FEATURES) == 16
    h = load_histogram(exported / "out", "m_hh")
    hm = load_histogram(exported / "out", "h1_mass")
    for dataset in ("hh_k1", "qcd"):
        t = read_feature_table(exported / "features" / f"{dataset}.parquet")
        assert set(NONRESONANT_FEATURES) <= set(t)
        # every paired event, once, with its weight: the processor's four_tag region for min_dr
        for region in ("four_tag", "signal", "preselection"):
            sel = h[{"dataset": dataset, "region": region, "pairer": "min_dr", "systematic": "nominal"}]
            rows = t[f"in_{region}"]
            assert rows.sum() > 0
            assert t["weight"][rows].sum() == pytest.approx(sel.values(flow=True).sum(), rel=1e-10)
            # the same m_hh and m_h1 values: histogramming the table reproduces the processor's bins
            np.testing.assert_allclose(np.histogram(t["m_hh"][rows], bins=sel.axes[0].edges, weights=t["weight"][rows])[0],
                                       sel.values(), rtol=1e-9)
            s1 = hm[{"dataset": dataset, "region": region, "pairer": "min_dr", "systematic": "nominal"}]
            np.testing.assert_allclose(np.histogram(t["h1_mass"][rows], bins=s1.axes[0].edges, weights=t["weight"][rows])[0],
                                       s1.values(), rtol=1e-9)
        # h1 is the candidate with the higher scalar-sum pT; j1 the higher-pT jet of each
        assert np.all(t["h1_j1_pt"] + t["h1_j2_pt"] >= t["h2_j1_pt"] + t["h2_j2_pt"] - 1e-9)
        assert np.all(t["h1_j1_pt"] >= t["h1_j2_pt"]) and np.all(t["h2_j1_pt"] >= t["h2_j2_pt"])
        assert np.all(np.isfinite(np.stack([t[n] for n in NONRESONANT_FEATURES])))
        np.testing.assert_array_equal(t["file_entry"], np.sort(t["file_entry"]))
    # signal keeps its kappa_lambda; background draws from the training list, reproducibly
    k1 = read_feature_table(exported / "features" / "hh_k1.parquet")["kappa_lambda"]
    assert np.all(k1 == 1.0)
    q = read_feature_table(exported / "features" / "qcd.parquet")
    from hhcoffea.constants import KAPPA_LAMBDA_TRAINING

    assert set(np.unique(q["kappa_lambda"])) == set(KAPPA_LAMBDA_TRAINING)
    assert np.all(q["label"] == 0) and np.all(k1 >= 0)
    # the HDF5 table holds the same rows (its background kappa_lambda: the same seed)
    h5 = read_feature_table(exported / "features_h5" / "qcd.h5")
    for name in (*NONRESONANT_FEATURES, "weight", "label", "file_entry"):
        np.testing.assert_array_equal(h5[name], q[name])


def test_short_training_beats_random_and_onnx_equals_torch(exported, tmp_path):
    import torch

    from hhcoffea.ml.dnn import _network, weighted_auc
    from hhcoffea.ml.session import get_session

    options = {"analysis": "nonresonant", "features": str(exported / "features"), "backgrounds": ["qcd"],
               "output": "model", "epochs": 6, "patience": 3, "hidden": 32, "layers": 2, "learning_rate": 3e-3,
               "seed": 3}
    (tmp_path / "options.yaml").write_text(yaml.safe_dump(options))
    out = _cli("train", "dnn", str(tmp_path / "options.yaml"), "--no-progress")
    assert "validation AUC" in out
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["validation_auc"] > 0.7, metrics["validation_auc"]
    assert 0.5 < metrics["validation_accuracy"] <= 1.0
    assert metrics["features"] == list(NONRESONANT_FEATURES) and metrics["epochs_run"] <= 6
    assert metrics["network"] == {"hidden": 32, "layers": 2, "learning_rate": 3e-3, "batch_size": 512}
    # a random score has AUC 1/2 on the same events (the metric can tell the difference)
    rng = np.random.default_rng(0)
    labels = rng.random(5000) < 0.5
    assert abs(weighted_auc(rng.random(5000), labels) - 0.5) < 0.03
    assert weighted_auc(labels + 0.1 * rng.random(5000), labels) == pytest.approx(1.0)
    # the ONNX model (standardisation folded in) gives the torch network's scores
    saved = torch.load(tmp_path / "model" / "model.pt", weights_only=False)
    net = _network(21, 32, 2)
    net.load_state_dict(saved["state_dict"])
    x = rng.normal(size=(300, 21)) * saved["std"] + saved["mean"]
    with torch.no_grad():
        p_torch = torch.sigmoid(net(torch.from_numpy(((x - saved["mean"]) / saved["std"]).astype(np.float32)))).numpy()[:, 0]
    p_onnx = get_session(tmp_path / "model" / "model.onnx").run(["score"], {"features": x.astype(np.float32)})[0]
    np.testing.assert_allclose(p_onnx, p_torch, atol=2e-5)


def test_dnn_scorer_pickles_without_session_and_scores_in_a_job(exported, tmp_path):
    from hhcoffea.ml import session as sessions
    from hhcoffea.plugins.dnn import DNNScorer
    from hhcoffea.scoring import EventColumns
    from hhcoffea.scoring.export import read_feature_table

    t = read_feature_table(exported / "features" / "hh_k1.parquet")
    cols = EventColumns({n: t[n] for n in NONRESONANT_FEATURES})
    scorer = DNNScorer()  # the shipped non-resonant model
    scores = scorer(cols)
    assert scores.shape == (cols.n_events,) and np.all((scores >= 0) & (scores <= 1))
    assert len(sessions._SESSIONS) >= 1
    blob = pickle.dumps(scorer)
    assert len(blob) < 2000 and b"InferenceSession" not in blob
    again = pickle.loads(blob)
    np.testing.assert_array_equal(again(cols), scores)
    # kappa_lambda is the scorer's hypothesis, not the column: changing it changes the scores
    assert not np.allclose(DNNScorer(kappa_lambda=9.0)(cols), scores)
    # the resonant model takes the 16 features only
    assert DNNScorer(model="resonant").features == list(RESONANT_FEATURES)
    with pytest.raises(FileNotFoundError, match="dnn scorer: model"):
        DNNScorer(model=str(tmp_path / "missing.onnx"))
    # a job: the shipped DNN selects better than chance (signal efficiency above background's)
    job = yaml.safe_load((exported / "job.yaml").read_text())
    job["output"] = str(tmp_path / "out")
    job["samples"]["directory"] = str(exported / "data")
    job["pairers"] = {"min_dr": {}}
    job["scorers"] = {"dnn": {}}
    job["selections"] = {"dnn_min_dr": {"pairer": "min_dr", "scorer": "dnn", "threshold": "optimise",
                                        "signal": ["hh_k1"], "backgrounds": ["qcd"]}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    out = _cli("run", str(tmp_path / "job.yaml"), "--no-progress", "--no-plots")
    assert "selection dnn_min_dr (dnn on min_dr, after four_tag)" in out
    report = json.loads((tmp_path / "out" / "selections.json").read_text())["dnn_min_dr"]
    assert report["optimised"] and report["signal_efficiency"] > 3 * report["background_efficiency"]


def test_session_cache_one_per_model_and_threads(tmp_path):
    from hhcoffea.ml.dnn import write_onnx
    from hhcoffea.ml.session import OnnxModel, clear_sessions, get_session

    rng = np.random.default_rng(1)
    state = {"0.weight": rng.normal(size=(4, 3)), "0.bias": np.zeros(4), "2.weight": rng.normal(size=(1, 4)),
             "2.bias": np.zeros(1)}
    path = write_onnx(tmp_path / "m.onnx", state, np.zeros(3), np.ones(3), ["a", "b", "c"], "resonant")
    clear_sessions()
    assert get_session(path) is get_session(str(path)) is OnnxModel(path).session
    assert get_session(path, threads=2) is not get_session(path)
    model = pickle.loads(pickle.dumps(OnnxModel(path, threads=2)))
    assert model.session is get_session(path, 2) and model.metadata["hhcoffea.features"] == "a,b,c"
    x = rng.normal(size=(5, 3)).astype(np.float32)
    expected = 1 / (1 + np.exp(-(np.maximum(x @ state["0.weight"].T, 0) @ state["2.weight"].T)))[:, 0]
    np.testing.assert_allclose(model.run({"features": x})["score"], expected, rtol=1e-5)
    (tmp_path / "bad.onnx").write_text("not a model")
    with pytest.raises(ValueError, match="bad.onnx: not a loadable ONNX model"):
        get_session(tmp_path / "bad.onnx")
