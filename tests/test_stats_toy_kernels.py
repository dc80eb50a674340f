"""The compiled toy fitter (hhcoffea.stats.toy_kernels) against the numpy formulation of the same
batched Gauss-Newton fits (FastModel._fit_many_numpy), step for step, on real pyhf models with
every modifier FastModel supports: normfactor, lumi, normsys (code4), histosys (code4p) and
staterror (one gamma per bin, a gamma on only some samples or channels, and two gammas in a bin)."""

from __future__ import annotations

import numpy as np
import pyhf
import pytest
from test_stats_hh import small_model
from test_stats_multichannel import shared_names_two_channels, three_channels_per_channel_staterror

from hhcoffea.stats import limits, toy_kernels
from hhcoffea.stats.likelihood import FastModel


def _sample(name, data, *mods):
    return {"name": name, "data": list(data), "modifiers": list(mods)}


def _two_channel_spec(shared_bin_gammas: bool) -> dict:
    """Two channels, each sample name in one of them; staterror on the background of channel A only (gammas not on every sample or
    bin), a histosys in A, a normsys on two samples, lumi everywhere. ``shared_bin_gammas``: ttbar
    gets its own staterror in channel B, so B's bins carry two gammas each (the dense-gamma path)."""
    lumi = {"name": "lumi", "type": "lumi", "data": None}
    mu = {"name": "mu", "type": "normfactor", "data": None}
    bnorm = {"name": "bnorm", "type": "normsys", "data": {"hi": 1.08, "lo": 0.9}}
    a_bkg, a_sig, b_bkg, b_tt, b_sig = [60.0, 35.0, 12.0], [2.0, 5.0, 3.0], [40.0, 8.0], [10.0, 4.0], [1.0, 3.0]
    ch_a = [
        _sample("bkg_a", a_bkg, lumi, bnorm,
                {"name": "stat_a", "type": "staterror", "data": [3.0, 2.0, 1.5]},
                {"name": "shape", "type": "histosys",
                 "data": {"hi_data": [63.0, 36.0, 11.0], "lo_data": [58.0, 34.5, 12.6]}}),
        _sample("sig_a", a_sig, lumi, mu),
    ]
    tt_mods = [lumi, bnorm, {"name": "tt_xs", "type": "normsys", "data": {"hi": 1.12, "lo": 0.85}}]
    if shared_bin_gammas:
        tt_mods.append({"name": "stat_tt", "type": "staterror", "data": [1.0, 0.8]})
    ch_b = [
        _sample("bkg_b", b_bkg, lumi, {"name": "stat_b", "type": "staterror", "data": [2.0, 1.0]}),
        _sample("ttbar", b_tt, *tt_mods),
        _sample("sig_b", b_sig, lumi, mu),
    ]
    return {
        "channels": [{"name": "A", "samples": ch_a}, {"name": "B", "samples": ch_b}],
        "observations": [{"name": "A", "data": [61.0, 40.0, 14.0]}, {"name": "B", "data": [52.0, 14.0]}],
        "measurements": [{"name": "m", "config": {"poi": "mu", "parameters": [
            {"name": "mu", "bounds": [[0, 20]]}, {"name": "lumi", "auxdata": [1.0], "sigmas": [0.02], "bounds": [[0.8, 1.2]], "inits": [1.0]}]}}],
        "version": "1.0.0",
    }


def _models():
    chans, sig, obs = small_model(nbins=4)
    yield "small (in-order gammas)", FastModel(pyhf.Workspace(chans.with_signal(obs, sig)).model())
    for shared in (False, True):
        yield f"two channels (shared-bin gammas {shared})", FastModel(pyhf.Workspace(_two_channel_spec(shared)).model())
    # sample names in several channels: one row per (sample, channel)
    yield "shared sample names", FastModel(pyhf.Workspace(shared_names_two_channels()).model())
    yield "three channels", FastModel(pyhf.Workspace(three_channels_per_channel_staterror()).model())


def _toys(fast, T=300, seed=0):
    rng = np.random.default_rng(seed)
    lam = fast.expected_actualdata(fast.init)
    n = rng.poisson(lam * rng.uniform(0.6, 1.6, (T, 1)), (T, lam.size)).astype(float)
    aux = fast.expected_auxdata(fast.init) + fast.constr_sigma * rng.standard_normal((T, fast.constr_index.size))
    # starts spread over +-2.5 sigma: both the polynomial and the extrapolated interpolation regions
    start = fast.init + np.where(fast.fixed, 0.0, rng.uniform(-2.5, 2.5, (T, fast.npars)) * fast.scale)
    start = np.clip(start, fast.bounds[:, 0] + 1e-3, fast.bounds[:, 1])
    return n, aux, start


def _start(fast, start, fixed_values):
    """fit_many's preparation of the rows, fixed values and bounds."""
    x = np.array(start, order="C")
    free = ~fast.fixed
    for i, v in (fixed_values or {}).items():
        x[:, i] = v
        free[i] = False
    lo = np.where(free, fast.bounds[:, 0], -np.inf)
    hi = np.where(free, fast.bounds[:, 1], np.inf)
    return np.clip(x, lo, hi), free, lo, hi


@pytest.mark.parametrize("max_iter", [1, 2, 60])
def test_compiled_fits_equal_numpy_formulation_step_for_step(max_iter):
    """After 1 and 2 iterations (unconverged: any difference in gradient, Hessian, curvature term,
    gamma elimination or line search shows) and at convergence."""
    for name, fast in _models():
        fast._prepare_many()
        n, aux, start = _toys(fast)
        aux_full = fast._aux_full(aux)
        for fixed in (None, {fast.poi_index: 2.0}):
            x_np, free, lo, hi = _start(fast, start, fixed)
            x_c = x_np.copy()
            f_np, ok_np = fast._fit_many_numpy(x_np, n, aux_full, free, lo, hi, max_iter, 1e-9)
            f_c, ok_c = toy_kernels.fit_toys(toy_kernels.pack_model(fast), x_c, n, aux_full, free, lo, hi, max_iter, 1e-9)
            np.testing.assert_allclose(x_c, x_np, rtol=1e-9, atol=1e-11, err_msg=name)
            np.testing.assert_allclose(f_c, f_np, rtol=1e-12, atol=1e-9, err_msg=name)
            np.testing.assert_array_equal(ok_c, ok_np, err_msg=name)
            if max_iter == 60:
                assert ok_c.mean() > 0.95, name
            else:
                assert not ok_c.all(), name  # the comparison is on unconverged iterates
        if max_iter == 60:  # mu^ pressed against its bound 0 in part of the toys
            x, free, lo, hi = _start(fast, start, None)
            toy_kernels.fit_toys(toy_kernels.pack_model(fast), x, n, aux_full, free, lo, hi, 60, 1e-9)
            assert np.any(x[:, fast.poi_index] == 0.0), name


def test_dense_gamma_path_is_exercised():
    fast = FastModel(pyhf.Workspace(_two_channel_spec(True)).model())
    fast._prepare_many()
    assert fast._gamma_bins is None and fast._gammas.size == 0  # every gamma in the dense block
    fast = FastModel(pyhf.Workspace(_two_channel_spec(False)).model())
    fast._prepare_many()
    assert fast._gammas.size == 5 and not fast._stat_full


def test_fit_many_compiled_equals_numpy_and_one_by_one():
    chans, sig, obs = small_model()
    fast = FastModel(pyhf.Workspace(chans.with_signal(obs, sig)).model())
    n, aux, _ = _toys(fast, T=60, seed=4)
    for fixed in (None, {fast.poi_index: 1.5}):
        c = fast.fit_many(n, aux, fast.init, fixed_values=fixed)
        p = fast.fit_many(n, aux, fast.init, fixed_values=fixed, compiled=False)
        np.testing.assert_allclose(c.nll, p.nll, rtol=1e-12)
        np.testing.assert_allclose(c.pars, p.pars, atol=1e-9)
        one = [fast.fit(np.concatenate([n[i], aux[i]]), fixed_values=fixed) for i in range(0, 60, 6)]
        np.testing.assert_allclose(c.nll[::6], [r.nll for r in one], atol=1e-7)


def test_solve_spd_fallbacks_equal_numpy():
    rng = np.random.default_rng(1)
    K = 4
    g = rng.normal(size=K)
    out, L, A, rhs = np.empty(K), np.empty((K, K)), np.empty((K, K)), np.empty(K)
    M = rng.normal(size=(K, K))
    spd = M @ M.T + K * np.eye(K)
    indefinite = spd - 2.5 * K * np.eye(K) * np.array([0, 0, 1, 0])[:, None]  # symmetric, one negative pivot
    indefinite = 0.5 * (indefinite + indefinite.T)
    assert np.linalg.eigvalsh(indefinite).min() < 0
    for H in (spd, indefinite):
        toy_kernels._solve_spd(H, g, out, L, A, rhs)
        np.testing.assert_allclose(out, np.linalg.solve(H, g), rtol=1e-10)
    singular = np.diag([2.0, 0.0, 4.0, 1.0])  # a parameter without curvature: its diagonal alone
    toy_kernels._solve_spd(singular, g, out, L, A, rhs)
    np.testing.assert_allclose(out, [g[0] / 2.0, 0.0, g[2] / 4.0, g[3]])


def test_toy_limits_compiled_equal_numpy_path(monkeypatch):
    chans, sig, obs = small_model()
    ws = pyhf.Workspace(chans.with_signal(obs, sig))
    model = ws.model()
    data = np.asarray(ws.data(model), dtype=float)
    fast = FastModel(model)
    compiled = limits.ToyLimits(fast, data, n_toys=1500, seed=9)
    res_c = compiled.result()
    real = FastModel.fit_many
    monkeypatch.setattr(FastModel, "fit_many", lambda self, *a, **k: real(self, *a, **{**k, "compiled": False}))
    numpy_path = limits.ToyLimits(fast, data, n_toys=1500, seed=9)
    res_p = numpy_path.result()
    np.testing.assert_allclose([res_c.observed, *res_c.expected], [res_p.observed, *res_p.expected], rtol=1e-3)
    assert sorted(compiled._cache) == sorted(numpy_path._cache)
    for mu, ev in compiled._cache.items():
        np.testing.assert_allclose(ev["expected"], numpy_path._cache[mu]["expected"], rtol=1e-3)
        assert ev["observed"] == pytest.approx(numpy_path._cache[mu]["observed"], rel=1e-3)
