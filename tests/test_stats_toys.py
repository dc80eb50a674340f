"""Toy-based CLs, FastModel's refusals, fit convergence flags and the kappa_lambda-POI scan on
background-only data (real pyhf models throughout)."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pyhf
import pytest
from scipy.optimize import brentq
from scipy.special import ndtr
from scipy.stats import poisson
from test_stats_hh import L0, base_config, counting_model, make_input, small_model

from hhcoffea.stats import analysis, config, kappa, limits, workspace
from hhcoffea.stats.likelihood import FastModel, UnsupportedModelError


def exact_counting_band(s: float, b: float, level: float = 0.05) -> list[float]:
    """Exact CLs expected band of a counting experiment (what infinite toys give): for the
    background-only quantile n_q of the count, CLs(mu) = P(n <= n_q | mu s + b) / P(n <= n_q | b)."""
    out = []
    for n_sigma in limits.BAND_SIGMAS:
        n_q = poisson.ppf(ndtr(-n_sigma), b)  # smallest n with P(N <= n | b) >= Phi(-n_sigma)
        f = lambda mu: poisson.cdf(n_q, mu * s + b) / poisson.cdf(n_q, b) - level  # noqa: B023 (solved here)
        out.append(brentq(f, 1e-6, 50.0))
    return out


def test_toys_reproduce_exact_poisson_cls_at_low_counts():
    s, b, n_toys = 3.0, 1.0, 20000
    exact = exact_counting_band(s, b)
    np.testing.assert_allclose(exact, [0.999, 0.999, 1.371, 1.803, 2.261], atol=1.5e-3)  # issue 9's numbers
    model, data = counting_model(s, b)
    toys = limits.upper_limit(model, data, calculator="toys", n_toys=n_toys, seed=3)
    assert toys.calculator == "toys" and toys.n_toys == n_toys and toys.converged
    # toy precision: CLs ~ level at the limit is a ratio of tail fractions; its relative error is
    # ~ sqrt((1 - p_sb) / (N p_sb)), and d ln CLs / d mu is about -s there
    for got, want in zip(toys.expected, exact):
        p_sb = level_tail = 0.05 * poisson.cdf(poisson.ppf(0.5, b), b)
        rel_cls = math.sqrt((1 - p_sb) / (n_toys * max(level_tail, 1e-3)))
        tol_mu = 4.0 * rel_cls / s + 1e-3
        assert got == pytest.approx(want, abs=tol_mu)
    # the asymptotic band is far off here (-52% .. +32%): the toys are not just the asymptotics
    asym = limits.upper_limit(model, data)
    assert asym.expected[0] < 0.6 * exact[0] and asym.expected[4] > 1.2 * exact[4]
    # the observed limit for an observed count n = 3 is the exact CLs solution for n = 3
    model3, data3 = counting_model(s, b, n_obs=3.0)
    obs = limits.upper_limit(model3, data3, calculator="toys", n_toys=n_toys, seed=3).observed
    exact3 = brentq(lambda mu: poisson.cdf(3, mu * s + b) / poisson.cdf(3, b) - 0.05, 1e-6, 50)
    assert obs == pytest.approx(exact3, rel=0.03)


def test_toys_agree_with_asymptotics_at_high_counts_and_are_reproducible():
    model, data = counting_model(10.0, 100.0)
    a = limits.upper_limit(model, data)
    t = limits.upper_limit(model, data, calculator="toys", n_toys=4000, seed=11)
    assert t.median == pytest.approx(a.median, rel=0.04)
    np.testing.assert_allclose(t.expected[1:4], a.expected[1:4], rtol=0.06)
    np.testing.assert_allclose(t.expected, a.expected, rtol=0.1)
    again = limits.upper_limit(model, data, calculator="toys", n_toys=4000, seed=11)
    assert again.expected == t.expected and again.observed == t.observed
    other = limits.upper_limit(model, data, calculator="toys", n_toys=4000, seed=12)
    assert other.expected != t.expected


def test_toys_with_nuisance_parameters_follow_asymptotics():
    """Staterror, normsys, histosys and lumi in the toys (auxiliary data drawn too)."""
    chans, sig, obs = small_model()
    ws = pyhf.Workspace(chans.with_signal(obs, sig))
    model = ws.model()
    data = np.asarray(ws.data(model), dtype=float)
    a = limits.upper_limit(model, data)
    t = limits.upper_limit(model, data, calculator="toys", n_toys=3000, seed=5)
    assert t.converged and t.failed_fits == 0
    assert t.median == pytest.approx(a.median, rel=0.06)
    assert t.observed == pytest.approx(a.observed, rel=0.06)


def test_poisson_quantile_equals_scipy():
    rng = np.random.default_rng(2)
    u = rng.random((200, 6))
    lam = np.array([0.2, 1.0, 3.7, 30.0, 250.0, 1e4])
    np.testing.assert_array_equal(limits.poisson_quantile(u, lam), poisson.ppf(u, lam))


def test_fit_many_equals_one_by_one_fits():
    chans, sig, obs = small_model()
    ws = pyhf.Workspace(chans.with_signal(obs, sig))
    fast = FastModel(ws.model())
    rng = np.random.default_rng(4)
    lam = fast.expected_actualdata(fast.init)
    n = rng.poisson(lam, (40, lam.size)).astype(float)
    aux = fast.expected_auxdata(fast.init) + fast.constr_sigma * rng.standard_normal((40, fast.constr_index.size))
    for fixed in (None, {fast.poi_index: 1.5}):
        many = fast.fit_many(n, aux, fast.init, fixed_values=fixed)
        one = [fast.fit(np.concatenate([n[i], aux[i]]), fixed_values=fixed) for i in range(40)]
        assert many.success.all()
        np.testing.assert_allclose(many.nll, [r.nll for r in one], atol=1e-7)
        np.testing.assert_allclose(many.pars[:, fast.poi_index], [r.pars[fast.poi_index] for r in one], atol=1e-3)
    # mu^ pressed against its lower bound 0 in part of the toys
    assert np.any(fast.fit_many(n, aux, fast.init).pars[:, fast.poi_index] == 0.0)


# ---------------------------------------------------------------------------- FastModel refuses
def _spec():
    chans, sig, obs = small_model()
    return chans.with_signal(obs, sig)


def test_fast_model_refuses_other_interpolation_codes_and_modifiers():
    model = pyhf.Workspace(_spec()).model(modifier_settings={"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code2"}})
    with pytest.raises(UnsupportedModelError, match=r"'shape' \(type 'histosys'\) uses interpolation 'code2'") as e:
        FastModel(model)
    assert "\n" not in str(e.value)
    model = pyhf.Workspace(_spec()).model(modifier_settings={"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code4p"}})
    with pytest.raises(UnsupportedModelError, match=r"'bnorm' \(type 'normsys'\) uses interpolation 'code1'"):
        FastModel(model)
    spec = _spec()
    bkg = spec["channels"][0]["samples"][0]
    bkg["modifiers"].append({"name": "shp", "type": "shapesys", "data": [1.0] * len(bkg["data"])})
    with pytest.raises(UnsupportedModelError, match="'shp' \\(type 'shapesys'"):
        FastModel(pyhf.Workspace(spec).model())


def test_fast_model_refuses_empty_background_bin():
    spec = _spec()
    bkg = spec["channels"][0]["samples"][0]
    bkg["data"][1] = 0.0
    bkg["modifiers"] = [m for m in bkg["modifiers"] if m["type"] not in ("histosys", "staterror")]
    with pytest.raises(UnsupportedModelError, match="channel 'SR' bin 1 has 0 expected background events"):
        FastModel(pyhf.Workspace(spec).model())


def test_self_check_catches_a_wrong_likelihood_away_from_nominal():
    """A model whose histosys FastModel would read wrongly only for |alpha| > 1 fails the check."""
    fast = FastModel(pyhf.Workspace(_spec()).model())
    broken = copy.copy(fast)
    broken._hist = [(s, p, sl, du * 1.0, dd * 0.0) for s, p, sl, du, dd in fast._hist]  # drop the down shift
    with pytest.raises(UnsupportedModelError, match="differs from pyhf"):
        broken._check()


# ---------------------------------------------------------------------------- convergence
def test_failed_fit_is_retried_and_flagged(monkeypatch):
    model, data = counting_model(5.0, 20.0)
    fast = FastModel(model)
    real_fit = FastModel.fit
    calls = {"n": 0}

    def failing(self, data, init=None, fixed_values=None, bounds=None):
        res = real_fit(self, data, init=init, fixed_values=fixed_values, bounds=bounds)
        calls["n"] += 1
        if fixed_values and abs(list(fixed_values.values())[0] - 0.0) > 0:  # every conditional fit fails
            res.success = False
        return res

    monkeypatch.setattr(FastModel, "fit", failing)
    res = limits.upper_limit(fast, data)
    assert not res.converged and res.failed_fits > 0
    assert calls["n"] > res.failed_fits  # each failure was retried


def test_lbfgsb_abnormal_stop_is_not_success():
    model, data = counting_model(5.0, 20.0)
    fast = FastModel(model)
    n, aux = fast._split(data)
    free = ~fast.fixed
    # a start far outside the minimum with a 1-step budget cannot converge
    from scipy.optimize import minimize

    real = minimize

    def one_step(*a, **k):
        k["options"] = dict(k.get("options", {}), maxiter=1)
        return real(*a, **k)

    import hhcoffea.stats.likelihood as lik

    lik_minimize = lik.minimize
    try:
        lik.minimize = one_step
        _, ok = fast._lbfgsb(np.array([25.0]), n, aux, free, fast.bounds)
    finally:
        lik.minimize = lik_minimize
    assert ok is False


# ---------------------------------------------------------------------------- kappa_lambda conventions
def test_profile_scan_on_background_only_data_is_not_flat_and_minimal_at_smallest_signal(tmp_path):
    histos, meta = make_input()
    # without normalisation/shape systematics that could absorb a signal shaped like the background
    cfg = config.StatisticsConfig(base_config(systematics={"lumi": 0.017, "staterror": False}), meta)
    inp = analysis.AnalysisInputs(cfg, histos, meta)
    scale = 300.0 / L0
    chans, signal_at = inp.channels(scale, cfg.nonresonant_backgrounds), inp.signal_at(scale)
    grid = np.linspace(-6, 14, 41)
    scan = kappa.kappa_profile_scan(chans, signal_at, grid, chans.asimov())  # background-only Asimov
    curve = np.array(scan["minus_two_delta_nll"])
    assert curve.max() > 10.0  # not flat: the model keeps mu = 1
    fine = np.linspace(-6, 14, 401)
    yields = [sum(s.template.yields.sum() for s in signal_at(k).values()) for k in fine]
    k_min_yield = fine[int(np.argmin(yields))]
    # the signal yield as the likelihood counts it: each bin weighted by its background,
    # -2 ln L of B + S(kappa) against B without nuisance parameters
    b = np.concatenate([chans.total(ch) for ch in chans.backgrounds])

    def weighted(k):
        s_ = np.concatenate([signal_at(k)[ch].template.yields for ch in chans.backgrounds])
        return 2 * np.sum(s_ - b * np.log1p(s_ / b))

    k_min_weighted = fine[int(np.argmin([weighted(k) for k in fine]))]
    assert scan["best_fit"] == pytest.approx(k_min_weighted, abs=0.6)  # the lumi nuisance absorbs a little
    # the predicted yield at the best fit is near the smallest one (the yield is flat around 2.5-4)
    assert np.interp(scan["best_fit"], fine, yields) < 1.3 * min(yields)
    assert abs(scan["best_fit"] - k_min_yield) < 1.5
    assert not (-1.0 <= scan["best_fit"] <= 1.5)  # far from the SM: the data have no SM signal
    assert scan["converged"]
    # and through the job: hypothesis mu = 0 is background-only data, labelled so
    out = analysis.run_statistics(
        base_config(
            resonant=[],
            systematics={"lumi": 0.017, "staterror": False},
            nonresonant={**base_config()["nonresonant"], "hypothesis": {"kappa_lambda": 1.0, "mu": 0.0}},
        ),
        histos,
        meta,
        tmp_path,
    )
    prof = out["luminosities"]["300"]["kappa_lambda"]["profile"]
    assert prof["data"] == "background-only Asimov"
    assert prof["best_fit"] == pytest.approx(scan["best_fit"], abs=0.05)


def test_low_count_warning_with_asymptotic_calculator():
    t = workspace.Template(np.array([50.0, 3.0]), np.array([1.0, 1.0]))
    chans = workspace.Channels({"SR": [workspace.Sample("bkg", t, workspace.SampleSystematics())]}, 0.02)
    w = analysis.low_count_warning(chans, "asymptotic")
    assert "SR bin 1 (3)" in w and "toys" in w
    assert analysis.low_count_warning(chans, "toys") is None
    big = workspace.Channels({"SR": [workspace.Sample("bkg", t.scaled(10.0), workspace.SampleSystematics())]}, 0.02)
    assert analysis.low_count_warning(big, "asymptotic") is None


def test_job_with_toy_calculator_and_low_count_warning(tmp_path):
    histos, meta = make_input()
    cfg = base_config(
        nonresonant=None, resonant=["X_800"], luminosity=[300.0], calculator="toys", n_toys=400, seed=4
    )
    summary = analysis.run_statistics(cfg, histos, meta, tmp_path / "toys")
    res = json.loads((tmp_path / "toys" / "statistics" / "lumi_300" / "limits_resonant.json").read_text())
    assert (res["calculator"], res["n_toys"], res["seed"]) == ("toys", 400, 4)
    assert res["warnings"] == [] and res["converged"]
    asym = analysis.run_statistics(base_config(nonresonant=None, resonant=["X_800"], luminosity=[300.0]), histos, meta, tmp_path / "asym")
    t = summary["luminosities"]["300"]["resonant"]["xsec_limits_fb"]["800"]["expected"]
    a = asym["luminosities"]["300"]["resonant"]["xsec_limits_fb"]["800"]["expected"]
    assert t == pytest.approx(a, rel=0.15)
    assert "CLs toys (400 per hypothesis, seed 4)" in analysis.format_summary(summary)
    # at 0.3 fb-1 the high-m_hh bins expect fewer than 5 background events: warned
    low = analysis.run_statistics(base_config(nonresonant=None, resonant=["X_800"], luminosity=[0.3]), histos, meta, tmp_path / "low")
    warnings = low["luminosities"]["0.3"]["resonant"]["warnings"]
    assert len(warnings) == 1 and "fewer than 5 expected background events" in warnings[0]
    assert "warning (0.3 fb-1): asymptotic CLs with fewer than 5" in analysis.format_summary(low)


def test_unknown_statistics_key_is_named():
    histos, meta = make_input()
    with pytest.raises(ValueError, match=r"statistics.calculater: unknown key; did you mean 'calculator'\?"):
        config.StatisticsConfig(base_config(calculater="toys"), meta)
    bad = base_config()
    bad["nonresonant"] = {**bad["nonresonant"], "hypotesis": {"mu": 0}}
    with pytest.raises(ValueError, match=r"statistics.nonresonant.hypotesis: unknown key; did you mean 'hypothesis'"):
        config.StatisticsConfig(bad, meta)
    with pytest.raises(ValueError, match="statistics.calculator must be one of"):
        config.StatisticsConfig(base_config(calculator="bayes"), meta)
