"""Scorers and score-based selections (hhcoffea.scoring): the installed third-party scorer package
runs by name in jobs (futures workers too); a constant score passes all events or none; an
X_hh-window score cut equals the cut-based signal region; the optimised threshold on a toy with
known S and B is the analytic optimum; optimised regions equal direct filling with that cut."""

from __future__ import annotations

import math
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import hhcoffea.registry as registry
from hhcoffea.scoring import EventColumns, Scorer
from hhcoffea.scoring.selections import (
    SCORE_EDGES,
    finalise_selections,
    optimise_threshold,
    parse_selections,
    significance_scan,
)

EXAMPLE_SCORER = Path(__file__).parent / "thirdparty" / "hhcoffea-example-scorer"


@pytest.fixture(scope="module")
def example_scorer_site(tmp_path_factory) -> Path:
    """``hhcoffea-example-scorer`` pip-installed into a directory (as the pairer test does)."""
    root = tmp_path_factory.mktemp("example_scorer")
    source = root / "src"
    shutil.copytree(EXAMPLE_SCORER, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet", "--target", str(target),
         str(source)],
        capture_output=True, text=True, env={**__import__("os").environ, "PIP_NO_INDEX": "1",
                                              "PIP_DISABLE_PIP_VERSION_CHECK": "1"}, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return target


@pytest.fixture
def with_example_scorer(example_scorer_site, monkeypatch):
    """The example scorers visible to this process' registry (entry points found on sys.path)."""
    monkeypatch.syspath_prepend(str(example_scorer_site))
    registry.clear_cache()
    yield
    registry.clear_cache()


def _toy_job(tmp_path: Path, selections: dict, scorers: dict, executor: str = "iterative", n: int = 6000) -> Path:
    """Emulated X(500) -> hh -> 4b signal and QCD background (their metadata from the sidecars)."""
    job = {
        "name": "scoring",
        "output": "out",
        "samples": {"directory": "data", "seed": 3, "generate": {
            "sig": {"process": "resonant", "m_x": 500.0, "n_events": n},
            "bkg": {"process": "qcd", "n_events": 5 * n},
        }},
        "pairers": {"min_dr": {}, "chi2": {}},
        "scorers": scorers,
        "selections": selections,
        "executor": {"name": executor, "workers": 2, "chunksize": 4000},
    }
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(job))
    return path


def _run(path: Path):
    from hhcoffea.workflow.job import load_job
    from hhcoffea.workflow.runner import run_job

    return run_job(load_job(path), status=False)


def _total(h, dataset, region, pairer="min_dr"):
    return h[{"dataset": dataset, "region": region, "pairer": pairer, "systematic": "nominal"}].values(flow=True).sum()


def test_constant_scorer_passes_all_or_none(with_example_scorer, tmp_path):
    selections = {
        "all_pass": {"pairer": "min_dr", "scorer": "const", "threshold": 0.69},
        "none_pass": {"pairer": "min_dr", "scorer": "const", "threshold": 0.71},
        "after_presel": {"pairer": "chi2", "scorer": "const", "threshold": 0.0, "after": "preselection"},
    }
    result = _run(_toy_job(tmp_path, selections, {"const": {"plugin": "constant", "options": {"value": 0.7}}}))
    hists = result.output["histograms"]
    for name in ("m_hh", "x_hh", "h1_pt"):
        h = hists[name]
        for d in ("sig", "bkg"):
            four_tag = _total(h, d, "four_tag")
            assert four_tag > 0
            assert _total(h, d, "all_pass") == pytest.approx(four_tag, rel=1e-12)
            assert _total(h, d, "none_pass") == 0.0
            assert _total(h, d, "after_presel", "chi2") == pytest.approx(_total(h, d, "preselection", "chi2"), rel=1e-12)
    report = result.output["selections"]
    assert report["all_pass"]["signal_efficiency"] == pytest.approx(1.0)
    assert report["none_pass"]["s"] == 0.0 and report["none_pass"]["b"] == 0.0
    # the score histogram holds every paired event at 0.7
    hs = hists["score"][{"dataset": "sig", "selection": "all_pass", "systematic": "nominal"}]
    k = np.searchsorted(SCORE_EDGES, 0.7) - 1
    assert hs.values()[k] == pytest.approx(_total(hists["m_hh"], "sig", "four_tag"))
    assert hs.values().sum() == pytest.approx(hs.values()[k])


def test_x_hh_window_score_cut_is_the_signal_region_and_optimised_region_matches_direct_fill(with_example_scorer, tmp_path):
    """score = exp(-X_hh^2 / 2 1.6^2) > exp(-1/2) after the preselection is the cut-based signal
    region; the region an optimised threshold fills after the run (from m_hh x score) equals a
    second run that applies that threshold as a number in the workers."""
    selections = {
        "window_sr": {"pairer": "min_dr", "scorer": "window", "threshold": math.exp(-0.5), "after": "preselection"},
        "window_opt": {"pairer": "min_dr", "scorer": "window", "threshold": "optimise", "min_background_mc": 5},
    }
    scorers = {"window": {"plugin": "mass_window"}}
    result = _run(_toy_job(tmp_path, selections, scorers))
    hists = result.output["histograms"]
    for name in ("m_hh", "h1_mass", "m_h1_m_h2"):
        for d in ("sig", "bkg"):
            a = hists[name][{"dataset": d, "region": "window_sr", "pairer": "min_dr", "systematic": "nominal"}]
            b = hists[name][{"dataset": d, "region": "signal", "pairer": "min_dr", "systematic": "nominal"}]
            np.testing.assert_array_equal(a.values(flow=True), b.values(flow=True))
    threshold = result.output["selections"]["window_opt"]["threshold"]
    assert 0.0 < threshold < 1.0 and threshold in SCORE_EDGES
    (tmp_path / "again").mkdir()
    again = _run(_toy_job(tmp_path / "again", {
        "window_fixed": {"pairer": "min_dr", "scorer": "window", "threshold": threshold}}, scorers))
    for d in ("sig", "bkg"):
        opt = hists["m_hh"][{"dataset": d, "region": "window_opt", "pairer": "min_dr", "systematic": "nominal"}]
        fixed = again.output["histograms"]["m_hh"][{"dataset": d, "region": "window_fixed", "pairer": "min_dr",
                                                    "systematic": "nominal"}]
        np.testing.assert_allclose(opt.values(flow=True), fixed.values(flow=True), rtol=1e-12)
        np.testing.assert_allclose(opt.variances(flow=True), fixed.variances(flow=True), rtol=1e-12)
        assert fixed.values().sum() > 0
    # S and B of the report are the region's yields
    rep = result.output["selections"]["window_opt"]
    assert rep["s"] == pytest.approx(_total(hists["m_hh"], "sig", "window_opt"), rel=1e-9)
    assert rep["b"] == pytest.approx(_total(hists["m_hh"], "bkg", "window_opt"), rel=1e-9)


def test_optimised_threshold_is_the_analytic_optimum():
    """Signal density 2p, background uniform: S = N_s (1 - t^2), B = N_b (1 - t), so
    S/sqrt(B) ~ (1 + t) sqrt(1 - t), maximal at t = 1/3. Bin contents are the exact integrals."""
    edges = np.linspace(0.0, 1.0, 301)
    n_s, n_b = 50.0, 1e4
    s_bins = n_s * np.diff(edges**2)
    b_bins = n_b * np.diff(edges)
    flow = lambda x: np.concatenate([[0.0], x, [0.0]])  # noqa: E731
    best = optimise_threshold(flow(s_bins), flow(b_bins), flow(b_bins * 1e-4), edges, min_background=1.0,
                              min_background_mc=1.0)
    assert best["threshold"] == pytest.approx(1.0 / 3.0, abs=0.5 / 300)
    t = best["threshold"]
    assert best["z"] == pytest.approx(n_s * (1 - t * t) / math.sqrt(n_b * (1 - t)), rel=1e-9)
    # the minimum background yield binds: B = n_b (1 - t) >= 0.8 n_b means t <= 0.2
    bound = optimise_threshold(flow(s_bins), flow(b_bins), flow(b_bins * 1e-4), edges, min_background=0.8 * n_b,
                               min_background_mc=1.0)
    assert bound["threshold"] == pytest.approx(0.2, abs=1e-12)
    # and so does the effective MC count: sum w^2 = 1e-4 per unit of yield -> n_eff = 1e4 B / n_b ...
    s, b, n_eff, z = significance_scan(flow(s_bins), flow(b_bins), flow(b_bins * 1e-4))
    assert n_eff[0] == pytest.approx(1e4 * b[0]) and z.argmax() == np.argmin(np.abs(edges[:-1] - 1 / 3))
    with pytest.raises(ValueError, match="no threshold keeps"):
        optimise_threshold(flow(s_bins), flow(b_bins), flow(b_bins * 1e-4), edges, min_background=2 * n_b)


def test_selection_config_errors_name_the_key():
    regions = ("four_tag", "signal")
    with pytest.raises(ValueError, match=r"selections.s.scorer: got 'nope'; expected one of the job's scorers"):
        parse_selections({"s": {"pairer": "min_dr", "scorer": "nope"}}, ["min_dr"], ["dnn"], regions)
    with pytest.raises(ValueError, match=r"selections.s.threshold: got 1.5"):
        parse_selections({"s": {"pairer": "min_dr", "scorer": "dnn", "threshold": 1.5}}, ["min_dr"], ["dnn"], regions)
    with pytest.raises(ValueError, match=r"selections.signal: the name is a processor region"):
        parse_selections({"signal": {"pairer": "min_dr", "scorer": "dnn"}}, ["min_dr"], ["dnn"], regions)
    with pytest.raises(ValueError, match=r"selections.s.after: got 'sr'"):
        parse_selections({"s": {"pairer": "min_dr", "scorer": "dnn", "after": "sr"}}, ["min_dr"], ["dnn"], regions)


def test_scorer_output_is_checked():
    class Bad(Scorer):
        name = "bad"

        def score(self, events):
            return np.full(events.n_events, 1.5)

    with pytest.raises(ValueError, match=r"scorer 'bad' must return scores in \[0, 1\]"):
        Bad()(EventColumns({"x": np.zeros(3)}))
    with pytest.raises(TypeError, match="scorer 'bad' got unknown option"):
        Bad(width=2)
    cols = EventColumns({"x": np.arange(4.0)}, metadata={"dataset": "d"})
    back = pickle.loads(pickle.dumps(cols.subset(np.array([True, False, True, False]))))
    assert back.n_events == 2 and back["x"].tolist() == [0.0, 2.0] and back.metadata == {"dataset": "d"}


def test_third_party_scorer_runs_by_name_on_futures_workers(example_scorer_site, tmp_path):
    """Installed with pip, listed by ``hhcoffea plugins``, used by name in a job run by the CLI."""
    import os

    path = _toy_job(tmp_path, {"window": {"pairer": "min_dr", "scorer": "w", "threshold": math.exp(-0.5),
                                           "after": "preselection"}}, {"w": {"plugin": "mass_window"}},
                    executor="futures", n=3000)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(example_scorer_site), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    listing = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "plugins"], capture_output=True, text=True, env=env,
                             timeout=120)
    assert "mass_window" in listing.stdout and "hhcoffea-example-scorer" in listing.stdout
    proc = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "run", str(path), "--no-progress", "--no-plots"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "selection window (w on min_dr, after preselection): p_th = 0.6065" in proc.stdout
    with open(tmp_path / "out" / "hists" / "m_hh.pkl", "rb") as f:
        m_hh = pickle.load(f)
    for d in ("sig", "bkg"):
        np.testing.assert_array_equal(
            m_hh[{"dataset": d, "region": "window", "pairer": "min_dr", "systematic": "nominal"}].values(),
            m_hh[{"dataset": d, "region": "signal", "pairer": "min_dr", "systematic": "nominal"}].values())
    meta = yaml.safe_load((tmp_path / "out" / "metadata.json").read_text())
    assert meta["selections"]["window"]["pairer"] == "min_dr"
    assert (tmp_path / "out" / "selections.json").exists()


def test_finalise_without_selections_is_empty():
    assert finalise_selections({}, {}, {}) == {}


def test_spanet_scorer_shares_the_pairers_session_and_pickles_without_it():
    """The built-in spanet scorer reads EVENT/signal of the shipped SPA-Net model through the
    spanet pairer's cached session, on the jets the pairer paired."""
    import awkward as ak

    from hhcoffea.pairing import get_pairer
    from hhcoffea.scoring import get_scorer

    pairer, scorer = get_pairer("spanet"), get_scorer("spanet")
    assert scorer.pairer.session is pairer.session  # one ONNX Runtime session per model and process
    rng = np.random.default_rng(4)
    counts = rng.integers(4, 9, 50)
    n = int(counts.sum())
    pt = np.sort(rng.exponential(50.0, n) + 20.0)[::-1]
    jets = ak.unflatten(ak.zip({"pt": pt, "eta": rng.normal(0, 1.5, n), "phi": rng.uniform(-3, 3, n),
                                "mass": rng.uniform(5, 20, n), "btag": rng.random(n) < 0.7}), counts)
    cols = EventColumns({}, n_events=len(counts), jets=jets)
    scores = scorer(cols)
    assert scores.shape == (50,) and np.all((scores >= 0) & (scores <= 1)) and scores.std() > 0
    blob = pickle.dumps(scorer)
    assert b"InferenceSession" not in blob and len(blob) < 20_000
    np.testing.assert_allclose(pickle.loads(blob)(cols), scores, rtol=1e-6)
    with pytest.raises(ValueError, match="needs the paired jets"):
        scorer(EventColumns({"x": np.zeros(2)}))


def test_statistics_name_a_selection_and_compare_selections_side_by_side(tmp_path):
    """``statistics.selection`` takes a selection's region and pairer; ``compare`` computes the
    kappa_lambda intervals of several selections with the main analysis' machinery (a row equal
    to the main selection gives its intervals exactly) and prints them beside table VI."""
    from test_stats_hh import base_config, make_input

    from hhcoffea.constants import REFERENCE_KAPPA_INTERVALS_TABLE_VI
    from hhcoffea.stats import analysis

    histos, meta = make_input()
    # a job's selections as metadata.json lists them (here: the signal region, paired by spanet)
    meta = {**meta, "selections": {"signal": {"pairer": "spanet", "scorer": "x", "threshold": 0.5}}}
    nonres = {**base_config()["nonresonant"], "kappa_lambda": {"start": -8, "stop": 14, "num": 23}, "check": None}
    cfg = base_config(resonant=[], nonresonant=nonres, compare={
        "luminosity": [300],
        "cut_min_dr": {"regions": ["signal"], "pairer": "min_dr", "reference": "cut_based_min_dr"},
        "sel": {"selection": "signal", "reference": "spanet"},
    })
    summary = analysis.run_statistics(cfg, histos, meta, tmp_path / "a")
    main = summary["luminosities"]["300"]["kappa_lambda"]
    rows = summary["comparison"]
    assert rows["cut_min_dr"]["pairer"] == "min_dr" and rows["sel"]["pairer"] == "spanet"
    assert rows["cut_min_dr"]["luminosities"]["300"]["cls_expected"] == main["cls"]["expected"]
    assert rows["cut_min_dr"]["luminosities"]["300"]["profile"] == main["profile"]["interval"]
    by_selection = analysis.run_statistics(base_config(resonant=[], nonresonant=nonres, selection="signal"), histos, meta,
                                           tmp_path / "b")["luminosities"]["300"]["kappa_lambda"]
    assert rows["sel"]["luminosities"]["300"]["profile"] == by_selection["profile"]["interval"]
    # the spanet templates hold 25% more signal on the same background: a narrower interval
    assert by_selection["profile"]["interval"]["width"] < main["profile"]["interval"]["width"]
    text = analysis.format_summary(summary)
    lo, hi = REFERENCE_KAPPA_INTERVALS_TABLE_VI["cut_based_min_dr"]
    assert f"[{lo:.2f}, {hi:.2f}]" in text and "| sel | signal / spanet | job's systematics; qcd+ttbar | 300 |" in text
    from hhcoffea.stats.workspace import MissingInputError

    with pytest.raises(MissingInputError, match="selection 'nope' is not among the run's selections"):
        analysis.run_statistics(base_config(resonant=[], selection="nope"), histos, meta, tmp_path / "c")
