"""Tests of hhcoffea.stats on synthetic processor output (hist objects of the processor's layout).

Every test fits with real pyhf models (FastModel reproduces pyhf's logpdf and is checked against
it; the reference numbers come from pyhf's own upper_limit / hypotest / mle.fit).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys

import hist
import numpy as np
import pyhf
import pytest
from scipy.integrate import quad
from scipy.special import ndtri

from hhcoffea import constants
from hhcoffea.stats import analysis, config, kappa, limits, morphing, workspace
from hhcoffea.stats.likelihood import FastModel

L0 = 139.0
# the pyhf command-line interface (the console script's entry point, run in a subprocess)
PYHF_CLI = [sys.executable, "-c", "import sys; from pyhf.cli import cli; sys.exit(cli())"]
EDGES = np.linspace(250.0, 1250.0, 21)  # 20 bins
MH = constants.HIGGS_MASS


# ---------------------------------------------------------------------------- synthetic input
def _lumi(m):
    return np.exp(-m / 180.0) * (m / 250.0) ** 2  # falling "gluon luminosity" x phase space


def _amp2_parts(m):
    """|A|^2 = B^2 + 2k B T + k^2 T^2 per m_hh (PHYSICS.md: LO heavy-top limit)."""
    s = m**2
    B = -2.0 / 3.0
    T = 3 * MH**2 / (s - MH**2) * (2.0 / 3.0)
    w = _lumi(m) * np.sqrt(np.clip(1 - 4 * MH**2 / s, 0, None))
    return B * B * w, 2 * B * T * w, T * T * w


def _nonres_density(m, k):
    a, b, c = _amp2_parts(m)
    return a + k * b + k * k * c


_NORM = quad(lambda m: _nonres_density(m, 1.0), 2 * MH, 2000.0, limit=200)[0]


def nonres_xsec(k):
    """Emulated sigma x BR(4b) in fb, exactly quadratic in kappa (normalised to the SM value)."""
    return constants.GGF_HH_XSEC_SM_13TEV * constants.BR_HH_4B * quad(lambda m: _nonres_density(m, k), 2 * MH, 2000.0, limit=200)[0] / _NORM


def _sample_nonres(rng, k, n):
    grid = np.linspace(2 * MH + 1e-3, 2000.0, 20001)
    pdf = _nonres_density(grid, k)
    cdf = np.cumsum(pdf)
    cdf /= cdf[-1]
    return np.interp(rng.random(n), cdf, grid)


DATASETS = {
    "qcd": {"process": "qcd", "m_x": None, "kappa_lambda": None, "xsec_fb": 6.03e3, "n_generated": 200000},
    "ttbar": {"process": "ttbar", "m_x": None, "kappa_lambda": None, "xsec_fb": 300.0, "n_generated": 20000},
    "X_500": {"process": "resonant", "m_x": 500.0, "kappa_lambda": None, "xsec_fb": 3.64, "n_generated": 10000},
    "X_800": {"process": "resonant", "m_x": 800.0, "kappa_lambda": None, "xsec_fb": 0.6, "n_generated": 10000},
    "X_1000": {"process": "resonant", "m_x": 1000.0, "kappa_lambda": None, "xsec_fb": 0.081, "n_generated": 10000},
}
for _k in (1.0, 5.0, 10.0, 3.0):
    DATASETS[f"hh_kl{_k:g}"] = {
        "process": "nonresonant",
        "m_x": None,
        "kappa_lambda": _k,
        "xsec_fb": nonres_xsec(_k),
        "n_generated": 40000,
    }


def make_input(seed: int = 1, with_data: bool = False):
    """Histograms and a metadata.json-like dict (layout of the processor's output)."""
    rng = np.random.default_rng(seed)
    h = hist.Hist(
        hist.axis.StrCategory([], name="dataset", growth=True),
        hist.axis.StrCategory(["four_tag", "preselection", "signal", "control"], name="region"),
        hist.axis.StrCategory(["min_dr", "spanet"], name="pairer"),
        hist.axis.StrCategory(["nominal", "jes_up", "jes_down"], name="systematic"),
        hist.axis.Regular(20, 250.0, 1250.0, name="m_hh"),
        storage=hist.storage.Weight(),
    )
    for name, info in DATASETS.items():
        n = info["n_generated"]
        if info["process"] == "qcd":
            m = 250.0 + rng.exponential(220.0, n)
        elif info["process"] == "ttbar":
            m = 250.0 + rng.gamma(2.0, 120.0, n)
        elif info["process"] == "resonant":
            m = rng.normal(info["m_x"], 0.06 * info["m_x"], n)
        else:
            m = _sample_nonres(rng, info["kappa_lambda"], n)
        sel_eff = 0.05 if info["process"] == "qcd" else (0.05 if info["process"] == "ttbar" else 0.2)
        w = np.full(n, info["xsec_fb"] * L0 * sel_eff / n)
        for pairer, gain in (("min_dr", 1.0), ("spanet", 1.0 if info["process"] in ("qcd", "ttbar") else 1.25)):
            for region, frac in (("signal", 1.0), ("control", 0.5), ("four_tag", 3.0)):
                for syst, shift in (("nominal", 1.0), ("jes_up", 1.02), ("jes_down", 0.98)):
                    h.fill(dataset=name, region=region, pairer=pairer, systematic=syst, m_hh=m * shift, weight=w * gain * frac)
    if with_data:
        nom = h[{"dataset": ["qcd", "ttbar"], "region": "signal", "pairer": "min_dr", "systematic": "nominal"}]
        counts = rng.poisson(nom.values().sum(axis=0))
        centers = 0.5 * (EDGES[1:] + EDGES[:-1])
        for reg in ("signal", "control", "four_tag"):
            for pairer in ("min_dr", "spanet"):
                h.fill(dataset="data_obs", region=reg, pairer=pairer, systematic="nominal", m_hh=centers, weight=counts)
    meta = {"luminosity": L0, "datasets": DATASETS}
    return {"m_hh": h}, meta


@pytest.fixture(scope="module")
def synthetic():
    return make_input()


def base_config(**over):
    cfg = {
        "observable": "m_hh",
        "region": "signal",
        "pairer": "min_dr",
        "luminosity": [300.0],
        "backgrounds": ["qcd", "ttbar"],
        "resonant": ["X_500", "X_800", "X_1000"],
        "nonresonant": {
            "basis": ["hh_kl1", "hh_kl5", "hh_kl10"],
            "kappa_lambda": {"start": -8, "stop": 14, "num": 31},
            "hypothesis": {"kappa_lambda": 1.0, "mu": 1.0},
            "check": "hh_kl3",
        },
        "systematics": {
            "lumi": 0.017,
            "normsys": [
                {"name": "qcd_norm", "samples": ["qcd"], "hi": 1.05, "lo": 0.95},
                {"name": "ttbar_xs", "samples": ["ttbar"], "hi": 1.06, "lo": 0.93},
            ],
            "histosys": [{"name": "jes", "samples": ["qcd", "signal"]}],
        },
        "data": "asimov",
    }
    cfg.update(over)
    return cfg


def small_model(nbins=3, seed=3):
    """A few-bin model with staterror, normsys and an asymmetric histosys (pyhf is fast on it)."""
    rng = np.random.default_rng(seed)
    b = rng.uniform(40, 120, nbins)
    s = rng.uniform(3, 12, nbins)
    bt = workspace.Template(b, (0.06 * b) ** 2, {"shape": (b * 1.04, b * 0.99)})
    st = workspace.Template(s, (0.1 * s) ** 2, {"shape": (s * 1.08, s * 0.95)})
    chans = workspace.Channels(
        {
            "SR": [
                workspace.Sample(
                    "bkg", bt, workspace.SampleSystematics(normsys=[workspace.NormSys("bnorm", 1.1, 0.92)], histosys=["shape"])
                )
            ]
        },
        0.02,
    )
    sig = {"SR": workspace.Sample("signal", st, workspace.SampleSystematics(histosys=["shape"]))}
    obs = {"SR": np.round(b + 0.5 * s + rng.normal(0, 3, nbins))}
    return chans, sig, obs


# ---------------------------------------------------------------------------- likelihood
def test_fast_model_reproduces_pyhf_logpdf_and_gradient():
    chans, sig, obs = small_model()
    ws = pyhf.Workspace(chans.with_signal(obs, sig))
    model = ws.model()
    fast = FastModel(model)  # constructor already compares with pyhf at two points
    rng = np.random.default_rng(0)
    data = np.asarray(ws.data(model))
    for _ in range(5):
        pars = np.asarray(model.config.suggested_init(), dtype=float)
        pars += rng.normal(0, 0.8, pars.size) * fast.scale * ~fast.fixed
        pars[fast.poi_index] = rng.uniform(0.1, 3)
        np.testing.assert_allclose(fast.expected_data(pars), model.expected_data(pars), rtol=1e-12)
        assert fast.logpdf(pars, data) == pytest.approx(float(model.logpdf(pars, data)[0]), rel=1e-10)
        n, aux = fast._split(data)
        f0, g = fast.nll_and_grad(pars, n, aux)
        eps = 1e-6
        num = [
            (fast.nll_and_grad(pars + eps * np.eye(pars.size)[i], n, aux)[0]
             - fast.nll_and_grad(pars - eps * np.eye(pars.size)[i], n, aux)[0]) / (2 * eps)
            for i in range(pars.size)
        ]
        np.testing.assert_allclose(g, num, rtol=1e-5, atol=1e-6)
    # and the fit agrees with pyhf's minimiser
    ours = fast.fit(data)
    theirs, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    assert 2 * ours.nll == pytest.approx(float(twice_nll), abs=2e-4)
    assert ours.pars[fast.poi_index] == pytest.approx(float(theirs[fast.poi_index]), abs=0.02)


# ---------------------------------------------------------------------------- limits
def test_fast_limits_equal_pyhf_upper_limit():
    chans, sig, obs = small_model()
    ws = pyhf.Workspace(chans.with_signal(obs, sig))
    model = ws.model()
    data = ws.data(model)
    ours = limits.upper_limit(model, data)
    # pyhf's own root finder starts at mu = 0, where q_mu_A is 0/0 on current scipy ("function
    # value at x=0.0 is NaN", also at 1e-6); start it at 0.01, below every limit here
    obs_pyhf, exp_pyhf, _ = pyhf.infer.intervals.upper_limits.toms748_scan(
        data, model, 0.01, 10.0, from_upper_limit_fn=True
    )
    assert ours.observed == pytest.approx(float(obs_pyhf), rel=5e-3)
    np.testing.assert_allclose(ours.expected, np.asarray(exp_pyhf, dtype=float), rtol=5e-3)
    assert np.all(np.diff(ours.expected) > 0)
    # CLs at our limit is the level according to pyhf's own hypotest
    cls_obs, cls_exp = pyhf.infer.hypotest(ours.observed, data, model, test_stat="qtilde", return_expected_set=True)
    assert float(cls_obs) == pytest.approx(0.05, rel=2e-2)


def counting_model(s: float, b: float, n_obs: float | None = None):
    """One bin, signal s with POI mu, background b, no systematics; data b (Asimov) or n_obs."""
    spec = {
        "channels": [
            {
                "name": "c",
                "samples": [
                    {"name": "sig", "data": [s], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
                    {"name": "bkg", "data": [b], "modifiers": []},
                ],
            }
        ],
        "observations": [{"name": "c", "data": [b if n_obs is None else n_obs]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [{"name": "mu", "bounds": [[0, 30]]}]}}],
        "version": "1.0.0",
    }
    ws = pyhf.Workspace(spec)
    model = ws.model()
    return model, np.asarray(ws.data(model), dtype=float)


def test_counting_model_expected_limit_matches_closed_form():
    """One bin, no systematics, Asimov: sqrt(q_mu,A) = sqrt(2 (mu s - b ln(1 + mu s / b))) = s*_n."""
    s, b = 10.0, 50.0
    model, data = counting_model(s, b)
    res = limits.upper_limit(model, data)
    from scipy.optimize import brentq

    for n, got in zip(limits.BAND_SIGMAS, res.expected):
        target = -n - ndtri(0.05 * (0.5 * math.erfc(n / math.sqrt(2))))
        closed = brentq(lambda mu: math.sqrt(2 * (mu * s - b * math.log1p(mu * s / b))) - target, 1e-6, 50)  # noqa: B023
        assert got == pytest.approx(closed, rel=1e-4)
    # median: Asimov with mu' = 0 has sqrt(q_A) = 1.96 at the limit (Cowan et al. eq. 89)
    assert res.median == pytest.approx(
        brentq(lambda mu: 2 * (mu * s - b * math.log1p(mu * s / b)) - 1.959963984540054**2, 1e-6, 50), rel=1e-4
    )
    assert res.observed == pytest.approx(res.median, rel=1e-9)  # data is the Asimov set
    # pyhf's expected CLs at our median limit is 0.05
    _, exp_set = pyhf.infer.hypotest(res.median, data, model, return_expected_set=True)
    assert float(exp_set[2]) == pytest.approx(0.05, rel=1e-3)


# ---------------------------------------------------------------------------- morphing
def test_basis_coefficients_reproduce_quadratics():
    ks = [1.0, 5.0, 10.0]
    c = morphing.basis_coefficients(ks, 3.0)
    poly = lambda k: 2.0 - 0.7 * k + 0.3 * k * k  # noqa: E731
    assert c @ [poly(k) for k in ks] == pytest.approx(poly(3.0), rel=1e-12)
    np.testing.assert_allclose(morphing.basis_coefficients(ks, 5.0), [0, 1, 0], atol=1e-12)
    assert sum(c) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="three distinct"):
        morphing.basis_coefficients([1.0, 1.0, 2.0], 0.0)
    xs = [nonres_xsec(k) for k in ks]
    assert morphing.morph_values(ks, xs, -3.0) == pytest.approx(nonres_xsec(-3.0), rel=1e-9)


def test_morphed_template_matches_direct_fourth_sample(synthetic):
    histos, meta = synthetic
    get = lambda d: workspace.extract_template(histos, d, region="signal", pairer="min_dr")  # noqa: E731
    basis = [get(f"hh_kl{k:g}") for k in (1, 5, 10)]
    direct = get("hh_kl3")
    morphed = morphing.morph_template([1.0, 5.0, 10.0], basis, 3.0)
    ok = direct.yields > 0
    pulls = (morphed.yields[ok] - direct.yields[ok]) / np.sqrt(morphed.sumw2[ok] + direct.sumw2[ok])
    assert ok.sum() >= 15
    assert np.all(np.abs(pulls) < 4.5)
    assert np.sum(pulls**2) / ok.sum() < 2.0  # chi2/ndf consistent with statistical errors
    assert morphed.yields.sum() == pytest.approx(direct.yields.sum(), rel=0.03)
    # a wrong basis kappa assignment is clearly rejected by the same comparison
    wrong = morphing.morph_template([1.0, 6.0, 10.0], basis, 3.0)
    bad = (wrong.yields[ok] - direct.yields[ok]) / np.sqrt(wrong.sumw2[ok] + direct.sumw2[ok])
    assert np.sum(bad**2) / ok.sum() > 5.0


# ---------------------------------------------------------------------------- workspaces and patchsets
def test_patchset_apply_with_pyhf_cli_gives_fittable_workspace(synthetic, tmp_path):
    histos, meta = synthetic
    cfg = base_config(nonresonant=None, luminosity=[300.0])
    summary = analysis.run_statistics(cfg, histos, meta, tmp_path)
    out = tmp_path / "statistics" / "lumi_300"
    bkg = json.loads((out / "resonant_bkgonly.json").read_text())
    pset = json.loads((out / "resonant_patchset.json").read_text())
    assert [p["metadata"]["name"] for p in pset["patches"]] == ["mX_500", "mX_800", "mX_1000"]
    pyhf.Workspace(bkg)
    pyhf.PatchSet(pset).verify(bkg)
    target = tmp_path / "mX_800.json"
    proc = subprocess.run(
        [*PYHF_CLI, "patchset", "apply", str(out / "resonant_bkgonly.json"), str(out / "resonant_patchset.json"),
         "--name", "mX_800", "--output-file", str(target)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    ws = pyhf.Workspace(json.loads(target.read_text()))
    model = ws.model()
    assert model.config.poi_name == "mu"
    assert {"lumi", "staterror", "qcd_norm", "ttbar_xs", "jes"} <= set(model.config.parameters)
    assert set(model.config.samples) == {"qcd", "ttbar", "signal"}
    pars, twice_nll = pyhf.infer.mle.fit(ws.data(model), model, return_fitted_val=True)
    assert abs(pars[model.config.poi_index]) < 0.05  # background-only Asimov data
    # the written limit is pyhf's: expected CLs at the stored median is 0.05
    rows = json.loads((out / "limits_resonant.json").read_text())["points"]
    row = next(r for r in rows if r["m_x"] == 800.0)
    _, exp_set = pyhf.infer.hypotest(row["mu_expected"][2], ws.data(model), model, return_expected_set=True)
    assert float(exp_set[2]) == pytest.approx(0.05, rel=1e-2)
    assert row["xsec_limit_observed_fb"] == pytest.approx(row["mu_observed"] * 0.6 * constants.SQRT_S_RESCALE_13_TO_14)
    assert summary["luminosities"]["300"]["resonant"]["data"] == "background-only Asimov"
    # background-only workspaces have no signal: their model needs poi_name=None (README)
    with pytest.raises(pyhf.exceptions.InvalidModel):
        pyhf.Workspace(bkg).model()
    assert pyhf.Workspace(bkg).model(poi_name=None).config.poi_index is None


def test_bad_input_names_what_is_missing(synthetic, tmp_path):
    histos, meta = synthetic
    with pytest.raises(workspace.MissingInputError, match="X_700") as e:
        analysis.run_statistics(base_config(resonant=["X_700"]), histos, meta, tmp_path)
    assert "\n" not in str(e.value)
    syst = base_config()["systematics"]
    syst["histosys"] = [{"name": "jer", "samples": ["qcd"]}]
    with pytest.raises(workspace.MissingInputError, match="jer_up"):
        analysis.run_statistics(base_config(systematics=syst), histos, meta, tmp_path)
    with pytest.raises(workspace.MissingInputError, match="region 'boosted'"):
        analysis.run_statistics(base_config(region="boosted"), histos, meta, tmp_path)
    with pytest.raises(workspace.MissingInputError, match="pairer 'chi2'"):
        analysis.run_statistics(base_config(pairer="chi2"), histos, meta, tmp_path)
    with pytest.raises(workspace.MissingInputError, match="data_obs"):
        analysis.run_statistics(base_config(data={"dataset": "data_obs"}), histos, meta, tmp_path)


# ---------------------------------------------------------------------------- kappa_lambda
def test_profile_scan_minimum_at_injected_kappa(synthetic):
    histos, meta = synthetic
    cfg = config.StatisticsConfig(base_config(), meta)
    inp = analysis.AnalysisInputs(cfg, histos, meta)
    scale = 300.0 / L0
    chans, signal_at = inp.channels(scale, cfg.nonresonant_backgrounds), inp.signal_at(scale)
    grid = np.linspace(-8, 14, 45)
    for injected in (1.0, 4.3):
        obs = chans.asimov(signal_at(injected), 1.0)
        scan = kappa.kappa_profile_scan(chans, signal_at, grid, obs)
        assert scan["best_fit"] == pytest.approx(injected, abs=0.02)
        assert min(scan["minus_two_delta_nll"]) >= -1e-6
        iv = scan["interval"]
        assert iv["lower"] < injected < iv["upper"]


def test_allowed_interval_interpolates_crossings():
    x = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    iv = kappa.allowed_interval(x, [10.0, 2.0, 0.0, 2.0, 10.0], 3.84)
    assert iv.lower == pytest.approx(1 - 1.84 / 8)
    assert iv.upper == pytest.approx(3 + 1.84 / 8)
    assert kappa.allowed_interval(x, [0.0, 5.0, 5.0, 0.0, 0.0], 1.0).upper is None  # open at the grid end
    two = kappa.allowed_interval(x, [5.0, 0.0, 5.0, 0.0, 5.0], 1.0)
    assert len(two.segments) == 2


def test_run_statistics_kappa_intervals_and_luminosity_scaling(synthetic, tmp_path):
    histos, meta = synthetic
    cfg = base_config(resonant=[], luminosity=[300.0, 3000.0])
    summary = analysis.run_statistics(cfg, histos, meta, tmp_path)
    k300 = summary["luminosities"]["300"]["kappa_lambda"]
    k3000 = summary["luminosities"]["3000"]["kappa_lambda"]
    for entry in (k300, k3000):
        # each interval names its own data: CLs on background-only Asimov, profile on SM S+B Asimov
        assert entry["cls"]["data"] == "background-only Asimov"
        assert entry["profile"]["data"] == "S+B Asimov at kappa_lambda=1, mu=1"
        iv = entry["profile"]["interval"]
        assert iv["lower"] < 1.0 < iv["upper"]
        assert entry["profile"]["best_fit"] == pytest.approx(1.0, abs=0.02)
        assert entry["cls"]["converged"] and entry["profile"]["converged"]
        assert entry["morphing_closure"]["chi2"] / entry["morphing_closure"]["ndf"] < 2.0
    assert k3000["profile"]["interval"]["width"] < k300["profile"]["interval"]["width"]
    res = json.loads((tmp_path / "statistics" / "lumi_300" / "kappa_lambda.json").read_text())
    cls = res["cls_mu_poi"]
    # on background-only Asimov data the limit on the data is the median expected one
    np.testing.assert_allclose(cls["mu_limit"]["observed"], np.array(cls["mu_limit"]["expected"])[:, 2], rtol=1e-9)
    # the edges are the root of the median mu limit = 1: a fresh limit at the edge gives mu_up = 1
    chans, signal_at, _ = _nonres_setup(histos, meta, 300.0)
    for edge in (cls["expected"]["lower"], cls["expected"]["upper"]):
        if edge is None:
            continue
        fast, data = kappa._model(chans, chans.asimov(), signal_at(edge))
        assert limits.upper_limit(fast, data).median == pytest.approx(1.0, abs=2e-4)
    assert np.all(np.array(cls["xsec_limit_fb"]["observed"]) > 0)
    for f in ("kappa_lambda.png", "nonresonant_patchset.json", "nonresonant_bkgonly.json"):
        assert (tmp_path / "statistics" / "lumi_300" / f).stat().st_size > 1000
    ps = pyhf.PatchSet(json.loads((tmp_path / "statistics" / "lumi_300" / "nonresonant_patchset.json").read_text()))
    assert len(ps.patches) == 31 and ps.labels == ["kappa_lambda"]
    text = analysis.format_summary(summary)
    assert "CLs mu-POI (background-only Asimov)" in text
    assert "profile likelihood kappa_lambda-POI (S+B Asimov at kappa_lambda=1, mu=1)" in text


def _nonres_setup(histos, meta, lumi, **over):
    cfg = config.StatisticsConfig(base_config(**over), meta)
    inp = analysis.AnalysisInputs(cfg, histos, meta)
    scale = lumi / L0
    return inp.channels(scale, cfg.nonresonant_backgrounds), inp.signal_at(scale), inp


def test_sm_excluded_cls_interval_has_no_width_and_empty_is_empty(synthetic, tmp_path):
    """Scaled up until the background-only CLs scan excludes the SM: said so, no width; further up
    every kappa_lambda is excluded and the interval is reported empty."""
    histos, meta = synthetic
    cfg = base_config(resonant=[], luminosity=[3000.0])
    cfg["nonresonant"] = {**cfg["nonresonant"], "check": None}
    # x30 signal (a made-up, much better selection) so that 3000 fb-1 excludes the SM
    h = histos["m_hh"].copy()
    view = h.view(flow=True)
    for name in ("hh_kl1", "hh_kl5", "hh_kl10"):
        i = list(h.axes["dataset"]).index(name)
        view.value[i] *= 30.0
        view.variance[i] *= 900.0
    summary = analysis.run_statistics(cfg, {"m_hh": h}, meta, tmp_path)
    c = summary["luminosities"]["3000"]["kappa_lambda"]["cls"]
    assert c["sm_excluded"] is True
    assert c["expected"]["width"] is None
    text = analysis.format_summary(summary)
    assert "SM excluded: no width" in text or "empty" in text
    iv = kappa.allowed_interval([0.0, 1.0, 2.0], [1.0, 2.0, 3.0], 0.0)
    assert iv.empty and iv.to_dict()["empty"] and iv.width is None
    assert "empty" in analysis._interval_text(iv.to_dict())
    assert not kappa.allowed_interval([0.0, 1.0, 2.0], [-1.0, -1.0, -1.0], 0.0).empty


def test_equivalent_luminosity(synthetic, tmp_path):
    # analytic width ~ 1/sqrt(L): reach width(300) x 0.9 -> L = 300 / 0.81
    eq = kappa.equivalent_luminosity(lambda L: 10.0 * math.sqrt(300.0 / L), 9.0, (30.0, 3000.0))
    assert eq == pytest.approx(300.0 / 0.81, rel=2e-3)
    histos, meta = synthetic
    cfg = base_config(
        resonant=[],
        pairer="spanet",  # the better selection (more signal)
        nonresonant={**base_config()["nonresonant"], "kappa_lambda": {"start": -8, "stop": 14, "num": 23}, "check": None},
        equivalent_luminosity={"baseline": {"pairer": "min_dr"}, "luminosity": 300.0, "methods": ["profile"]},
    )
    summary = analysis.run_statistics(cfg, histos, meta, tmp_path)
    eqr = summary["equivalent_luminosity"]["profile"]
    assert eqr["equivalent_luminosity_fb"] > 300.0  # the baseline needs more data
    # closure: the baseline's width at the equivalent luminosity equals the target
    inp = analysis.AnalysisInputs(config.StatisticsConfig(cfg, meta), histos, meta, pairer="min_dr")
    w = analysis.kappa_width(inp, eqr["equivalent_luminosity_fb"] / L0, "profile")
    assert w == pytest.approx(eqr["delta_kappa_lambda"], rel=5e-3)


def test_observed_dataset_is_used_and_labelled(tmp_path):
    histos, meta = make_input(seed=5, with_data=True)
    cfg = base_config(nonresonant=None, resonant=["X_500"], data={"dataset": "data_obs"})
    summary = analysis.run_statistics(cfg, histos, meta, tmp_path)
    res = json.loads((tmp_path / "statistics" / "lumi_300" / "limits_resonant.json").read_text())
    assert res["data"].startswith("observed")
    p = res["points"][0]
    out = tmp_path / "statistics" / "lumi_300"
    bkg = json.loads((out / "resonant_bkgonly.json").read_text())
    # the workspace holds the observed histogram x L/L0, not an Asimov set
    counts = histos["m_hh"][{"dataset": "data_obs", "region": "signal", "pairer": "min_dr", "systematic": "nominal"}].values()
    np.testing.assert_allclose(bkg["observations"][0]["data"], counts * 300.0 / L0)
    ws = pyhf.Workspace(workspace.apply_patch(bkg, json.loads((out / "resonant_patchset.json").read_text()), "mX_500"))
    model = ws.model()
    # the observed limit is where pyhf's own CLs on that data is 0.05
    cls_obs = float(pyhf.infer.hypotest(p["mu_observed"], ws.data(model), model, test_stat="qtilde"))
    assert cls_obs == pytest.approx(0.05, rel=2e-2)
    assert p["mu_observed"] != pytest.approx(p["mu_expected"][2], rel=1e-3)
    csv_text = (tmp_path / "statistics" / "lumi_300" / "limits_resonant.csv").read_text().splitlines()
    assert csv_text[0].startswith("m_x,dataset,xsec_fb,mu_obs")
    assert len(csv_text) == 2
    assert summary["luminosities"]["300"]["resonant"]["data"].startswith("observed")


def test_job_entry_point_and_per_analysis_backgrounds(synthetic, tmp_path):
    from types import SimpleNamespace

    histos, meta = synthetic
    from hhcoffea.histograms import save_histograms

    save_histograms(histos, tmp_path)
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    cfg = base_config(resonant={"datasets": ["X_500"], "backgrounds": ["qcd"]}, nonresonant=None, luminosity=[139.0])
    summary = analysis.run_statistics_for_job(SimpleNamespace(config={"statistics": cfg}, output=tmp_path))
    bkg = json.loads((tmp_path / "statistics" / "lumi_139" / "resonant_bkgonly.json").read_text())
    assert [s["name"] for s in bkg["channels"][0]["samples"]] == ["qcd"]
    assert "139 fb-1 resonant" in analysis.format_summary(summary)
    with pytest.raises(workspace.MissingInputError, match="hists"):
        analysis.run_statistics_for_job(SimpleNamespace(config={"statistics": cfg}, output=tmp_path / "nowhere"))


def test_nnlo_normalised_emulated_basis_uses_k_factor_morphing(synthetic):
    """Emulated shapes normalised to sigma_NNLO x BR are not quadratic in kappa_lambda: the
    analysis detects them and morphs with K(kappa)/K(kappa_i)-weighted coefficients."""
    from hhcoffea.emulation import xsec

    histos, meta = synthetic
    nnlo = {**meta, "datasets": {k: dict(v) for k, v in meta["datasets"].items()}}
    for name in ("hh_kl1", "hh_kl5", "hh_kl10", "hh_kl3"):
        k = nnlo["datasets"][name]["kappa_lambda"]
        nnlo["datasets"][name]["xsec_fb"] = float(constants.ggf_hh_xsec_13tev(k)) * constants.BR_HH_4B
    inp = analysis.AnalysisInputs(config.StatisticsConfig(base_config(), nnlo), histos, nnlo)
    assert inp.morphing == "emulation NNLO"
    sig = inp.signal_at(1.0)(3.0)["signal"].template.yields
    basis = [b["signal"].template.yields for b in inp.basis]
    d = xsec.nonresonant_morphing_coefficients([1.0, 5.0, 10.0], 3.0)
    np.testing.assert_allclose(sig, np.maximum(sum(c * y for c, y in zip(d, basis)), 0.0), rtol=1e-12)
    assert not np.allclose(d, morphing.basis_coefficients([1.0, 5.0, 10.0], 3.0), rtol=1e-3)
    plain = analysis.AnalysisInputs(config.StatisticsConfig(base_config(), meta), histos, meta)
    assert plain.morphing == "lagrange"
    forced = base_config()
    forced["nonresonant"] = {**forced["nonresonant"], "morphing": "lagrange"}
    assert analysis.AnalysisInputs(config.StatisticsConfig(forced, nnlo), histos, nnlo).morphing == "lagrange"


def test_compare_row_with_the_papers_poisson_likelihood(tmp_path):
    """A ``compare`` row with ``likelihood: poisson`` (the seeds' likelihood: Poisson terms only,
    QCD only) gives the profile-likelihood interval of the closed form -2 ln L ratio of Poisson
    counts, and is narrower than the job's likelihood with its nuisance parameters."""
    from scipy.optimize import brentq

    histos, meta = make_input()
    nonres = {**base_config()["nonresonant"], "kappa_lambda": {"start": -8, "stop": 14, "num": 45}, "check": None}
    cfg = base_config(resonant=[], nonresonant=nonres, compare={
        "luminosity": [300],
        "job": {"regions": ["signal"], "pairer": "min_dr", "backgrounds": ["qcd"]},
        "paper": {"regions": ["signal"], "pairer": "min_dr", "likelihood": "poisson", "backgrounds": ["qcd"],
                  "reference": "cut_based_min_dr"},
    })
    summary = analysis.run_statistics(cfg, histos, meta, tmp_path / "a")
    rows = summary["comparison"]
    paper, job = rows["paper"]["luminosities"]["300"], rows["job"]["luminosities"]["300"]

    # closed form: n = b + s(kappa = 1) (the S+B Asimov profile data), q(k) = 2 sum(lam - n - n ln(lam / n))
    sc = config.StatisticsConfig(cfg, meta)
    inp = analysis.AnalysisInputs(sc, histos, meta, regions=["signal"], pairer="min_dr", backgrounds=["qcd"])
    scale = 300.0 / L0
    b = inp.channels(scale, ["qcd"]).total("signal")
    s_at = inp.signal_at(scale)
    n = b + s_at(1.0)["signal"].template.yields

    def q(k):
        lam = b + s_at(k)["signal"].template.yields
        return 2.0 * np.sum(lam - n - n * np.log(lam / n)) - constants.PROFILE_SCAN_THRESHOLD

    lower, upper = brentq(q, -8.0, 1.0), brentq(q, 1.0, 14.0)
    assert paper["profile"]["lower"] == pytest.approx(lower, abs=2e-3)
    assert paper["profile"]["upper"] == pytest.approx(upper, abs=2e-3)
    assert paper["profile"]["width"] < 0.95 * job["profile"]["width"]  # the nuisances widen it
    # without nuisances this toy's background-only Asimov data exclude even the SM prediction
    assert (paper["sm_excluded"], job["sm_excluded"]) == (True, False) and paper["cls_expected"]["empty"]
    text = analysis.format_summary(summary)
    assert "| paper | signal / min_dr | Poisson only; qcd | 300 |" in text
    assert "| job | signal / min_dr | job's systematics; qcd | 300 |" in text

    for bad, match in (({"likelihood": "poison"}, "statistics.compare.x.likelihood: got 'poison'"),
                       ({"backgrounds": ["nope"]}, "statistics.compare.x.backgrounds: dataset 'nope'"),
                       ({"likelihod": "poisson"}, "likelihod")):
        with pytest.raises((ValueError, LookupError), match=match):
            config.StatisticsConfig(base_config(resonant=[], compare={"x": {"pairer": "min_dr", **bad}}), meta)
