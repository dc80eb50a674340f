"""The DNN classifier: ``hhcoffea export features`` tables hold exactly the processor's candidates;
a short training on generated samples beats a random score; the ONNX export gives the torch
network's scores; the ``dnn`` scorer (shipped model, ONNX and torch files) pickles without its
session and runs in a job; its int8 inference agrees with fp32 on generated samples (scores,
AUC, the selection at the optimised threshold) and quantises each event on its own; the shared
session cache."""

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
            "X500": {"process": "resonant", "m_x": 500.0, "n_events": 20000},
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
    assert set(index["datasets"]) == {"hh_k1", "hh_k5", "X500", "qcd"}
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
    # the int8 inference of the same model, on the same validation events
    assert metrics["int8"]["validation_auc"] == pytest.approx(metrics["validation_auc"], abs=2e-3)
    assert 0 < metrics["int8"]["p99_abs_delta_score"] <= metrics["int8"]["max_abs_delta_score"] < 0.05
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
    # a transformed (int8) session of the same file is another entry; it does not evict the plain one
    from hhcoffea.ml.dnn import int8_model_bytes

    plain = get_session(path)
    int8 = get_session(path, 1, transform=int8_model_bytes)
    assert int8 is not plain and get_session(path) is plain and get_session(path, transform=int8_model_bytes) is int8
    assert int8.get_modelmeta().custom_metadata_map["hhcoffea.precision"] == "int8"
    assert pickle.loads(pickle.dumps(OnnxModel(path, transform=int8_model_bytes))).session is int8
    model = pickle.loads(pickle.dumps(OnnxModel(path, threads=2)))
    assert model.session is get_session(path, 2) and model.metadata["hhcoffea.features"] == "a,b,c"
    x = rng.normal(size=(5, 3)).astype(np.float32)
    expected = 1 / (1 + np.exp(-(np.maximum(x @ state["0.weight"].T, 0) @ state["2.weight"].T)))[:, 0]
    np.testing.assert_allclose(model.run({"features": x})["score"], expected, rtol=1e-5)
    (tmp_path / "bad.onnx").write_text("not a model")
    with pytest.raises(ValueError, match="bad.onnx: not a loadable ONNX model"):
        get_session(tmp_path / "bad.onnx")


def _four_tag_scores(folder, dataset, analysis):
    """(fp32 scores, int8 scores, weights) of the shipped ``analysis`` DNN on ``dataset``'s four-tag events."""
    from hhcoffea.plugins.dnn import DNNScorer
    from hhcoffea.scoring import EventColumns
    from hhcoffea.scoring.export import read_feature_table

    t = read_feature_table(folder / f"{dataset}.parquet")
    rows = np.asarray(t["in_four_tag"], dtype=bool)  # every row: the table holds four-tag events
    cols = EventColumns({n: np.asarray(t[n])[rows] for n in NONRESONANT_FEATURES})
    return (DNNScorer(model=analysis, precision="fp32")(cols), DNNScorer(model=analysis, precision="int8")(cols),
            np.asarray(t["weight"])[rows])


@pytest.mark.parametrize("analysis, signal", [("resonant", "X500"), ("nonresonant", "hh_k1")])
def test_int8_scores_agree_with_fp32(exported, analysis, signal):
    """On generated samples that the shipped models never saw: the int8 scores are close to fp32
    event by event, the AUC is the same, and the S/sqrt(B)-optimised selection keeps the same events."""
    from hhcoffea.ml.dnn import weighted_auc
    from hhcoffea.scoring.selections import SCORE_EDGES, optimise_threshold

    s32, s8, sw = _four_tag_scores(exported / "features", signal, analysis)
    b32, b8, bw = _four_tag_scores(exported / "features", "qcd", analysis)
    assert len(s32) > 800 and len(b32) > 4000  # QCD DL1r four-tag: ~4,900 of 150k since EMULATION_VERSION 3
    delta = np.abs(np.concatenate([s8 - s32, b8 - b32]))
    print(f"{analysis}: max |delta| {delta.max():.4f}, 99% {np.quantile(delta, 0.99):.4f}")
    assert 1e-5 < delta.max() < 0.03  # really quantised, and close
    assert np.quantile(delta, 0.99) < 0.012
    labels = np.concatenate([np.ones(len(s32)), np.zeros(len(b32))])
    weights = np.concatenate([sw / sw.sum(), bw / bw.sum()])
    auc32 = weighted_auc(np.concatenate([s32, b32]), labels, weights)
    auc8 = weighted_auc(np.concatenate([s8, b8]), labels, weights)
    print(f"{analysis}: AUC fp32 {auc32:.5f} int8 {auc8:.5f}")
    assert auc32 > 0.8 and abs(auc8 - auc32) < 1e-3

    def flow(p, w, power=1):  # per score bin with flow, as the selections' histograms hold them
        return np.concatenate([[0.0], np.histogram(p, SCORE_EDGES, weights=w ** power)[0], [0.0]])

    best = {name: optimise_threshold(flow(s, sw), flow(b, bw), flow(b, bw, 2))
            for name, s, b in (("fp32", s32, b32), ("int8", s8, b8))}
    print(analysis, best)
    cut = best["fp32"]["threshold"]
    for w, p32, p8 in ((sw, s32, s8), (bw, b32, b8)):
        kept32, kept8 = w[p32 > cut].sum(), w[p8 > cut].sum()
        # 3%, or two events' weight (the flip allowance below): the EMULATION_VERSION 3 model's
        # optimum keeps only ~10 QCD MC events, one of them 10% of the background
        assert kept32 > 0 and abs(kept8 - kept32) < 0.03 * kept32 + 2 * w.max(), (kept32, kept8)
        assert np.sum((p32 > cut) != (p8 > cut)) <= 0.01 * np.sum(p32 > cut) + 2
    # optimised on int8 scores, the threshold lands within two score bins of fp32's
    k32, k8 = (int(np.searchsorted(SCORE_EDGES, best[n]["threshold"])) for n in ("fp32", "int8"))
    assert abs(k8 - k32) <= 2 and best["int8"]["z"] == pytest.approx(best["fp32"]["z"], rel=0.05)


def test_int8_model_quantises_each_event_on_its_own(tmp_path):
    """The int8 graph computes what hhcoffea.ml.dnn documents (7-bit weights per node, each
    event's activations on its own uint8 scale), so a score does not depend on its batch."""
    import onnx

    from hhcoffea.ml.dnn import INT8_WEIGHT_MAX, dnn_layers, int8_model, int8_model_bytes, write_onnx
    from hhcoffea.ml.session import get_session

    rng = np.random.default_rng(4)
    sizes = [5, 64, 64, 48, 1]
    state = {}
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        state[f"{2 * i}.weight"] = rng.normal(0, 1 / np.sqrt(n_in), (n_out, n_in))
        state[f"{2 * i}.bias"] = rng.normal(0, 0.1, n_out)
    mean, std = rng.normal(50, 10, 5), rng.uniform(1, 20, 5)
    path = write_onnx(tmp_path / "toy.onnx", state, mean, std, list("abcde"), "resonant")
    model = int8_model(path)
    ops = [n.op_type for n in model.graph.node]
    assert ops.count("MatMulInteger") == 2 and ops.count("Gemm") == 2  # hidden layers int8; first, last fp32
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["hhcoffea.precision"] == "int8" and meta["hhcoffea.features"] == "a,b,c,d,e"
    wq = [onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name.startswith("Wq")]
    assert all(w.dtype == np.int8 and np.abs(w).max() == INT8_WEIGHT_MAX for w in wq)

    x = (mean + std * rng.normal(size=(3000, 5))).astype(np.float32)
    session = get_session(path, 1, transform=int8_model_bytes)
    scores = session.run(["score"], {"features": x})[0]
    # the same events alone, in reverse order, next to an extreme event: the same scores
    alone = np.concatenate([session.run(["score"], {"features": x[i:i + 1]})[0] for i in range(20)])
    np.testing.assert_allclose(alone, scores[:20], rtol=0, atol=1e-6)
    np.testing.assert_allclose(session.run(["score"], {"features": x[::-1].copy()})[0][::-1], scores, rtol=0, atol=1e-6)
    extreme = np.vstack([x[:100], 1e4 * np.ones((1, 5), np.float32)])
    np.testing.assert_allclose(session.run(["score"], {"features": extreme})[0][:100], scores[:100], rtol=0, atol=1e-6)

    # numpy reference of the documented scheme (float64) against the ONNX Runtime graph
    layers, _ = dnn_layers(path)
    a = x.astype(np.float64)
    for i, (W, b) in enumerate(layers):
        if 0 < i < len(layers) - 1:
            q_scale = np.array([onnx.numpy_helper.to_array(t) for t in model.graph.initializer
                                if t.name == f"w_scale{i}"])[0, 0]
            Wq = next(onnx.numpy_helper.to_array(t) for t in model.graph.initializer if t.name == f"Wq{i}").T
            s = np.maximum(a.max(axis=1, keepdims=True) / 255, 1e-30)
            a = np.clip(np.round(a / s), 0, 255) * s @ (Wq * q_scale[:, None]).T + b
        else:
            a = a @ W.T + b
        if i < len(layers) - 1:
            a = np.maximum(a, 0)
    reference = 1 / (1 + np.exp(-a[:, 0]))
    # ONNX Runtime works in float32: now and then an activation lands one level off at a rounding tie
    off = np.abs(scores - reference)
    assert np.mean(off < 2e-5) > 0.99 and off.max() < 1e-3
    # and the whole scheme stays close to the fp32 network it came from
    fp32 = get_session(path).run(["score"], {"features": x})[0]
    assert 1e-6 < np.abs(scores - fp32).max() < 0.03

    # a graph that is not an hhcoffea DNN: one line naming the file and the way out
    from onnx import TensorProto, helper

    other = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["features"], ["score"])], "g",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 5])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 5])]))
    onnx.save(other, tmp_path / "other.onnx")
    with pytest.raises(ValueError, match=r"other.onnx: not an hhcoffea DNN graph .*precision: fp32"):
        int8_model(tmp_path / "other.onnx")


def test_dnn_scorer_precision_option():
    from hhcoffea.ml.dnn import int8_model
    from hhcoffea.ml.session import get_session
    from hhcoffea.plugins.dnn import DNNScorer, shipped_model
    from hhcoffea.scoring import EventColumns

    with pytest.raises(ValueError, match=r"precision must be one of \['int8', 'fp32'\], got 'fp16'"):
        DNNScorer(precision="fp16")
    # the shipped int8 graphs are int8_model of the shipped fp32 files (not stale after retraining)
    for name in ("resonant", "nonresonant"):
        assert shipped_model(name, "int8").read_bytes() == int8_model(shipped_model(name)).SerializeToString(), name
    scorer = DNNScorer(model="resonant")
    assert scorer.precision == "int8" and pickle.loads(pickle.dumps(scorer)).precision == "int8"
    assert scorer.session().get_modelmeta().custom_metadata_map["hhcoffea.precision"] == "int8"
    assert scorer.session() is get_session(shipped_model("resonant", "int8"))  # the shipped file, no quantising
    assert DNNScorer(model=str(shipped_model("resonant")), precision="int8").session() is scorer.session()
    rng = np.random.default_rng(2)
    cols = EventColumns({n: rng.normal(100.0, 30.0, 500) for n in RESONANT_FEATURES})
    fp32 = DNNScorer(model="resonant", precision="fp32")
    x = fp32.inputs(cols)
    np.testing.assert_array_equal(fp32(cols), np.clip(get_session(shipped_model("resonant")).run(["score"], {"features": x})[0], 0, 1))
    # the scorer's int8 scores are the shipped int8 graph's
    np.testing.assert_array_equal(scorer(cols), np.clip(scorer.session().run(["score"], {"features": x})[0], 0, 1))
