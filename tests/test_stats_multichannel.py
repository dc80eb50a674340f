"""FastModel on multi-channel workspaces where one sample name appears in several channels (what
hhcoffea.stats.workspace.Channels writes for multi-region jobs), against pyhf itself: expected
data, logpdf, its gradient (pyhf's pytorch backend, autodiff), the batched Jacobian, best fits,
the compiled and numpy toy fitters, and asymptotic and toy limits.

In pyhf a sample name is one row over all channels' bins, each modifier acts only in the channels
where the sample lists it, and a modifier name in several channels is one (correlated) parameter."""

from __future__ import annotations

import warnings

import numpy as np
import pyhf
import pytest

from hhcoffea.stats import kappa, limits, workspace
from hhcoffea.stats.likelihood import FastModel, UnsupportedModelError
from hhcoffea.stats.workspace import NormSys, Sample, SampleSystematics, Template


def _template(y, rel_stat=0.05, shape=None):
    y = np.asarray(y, dtype=float)
    variations = {}
    if shape is not None:  # a tilt: up raises the first bins, down the last ones
        tilt = np.linspace(shape, -shape, y.size)
        variations["shape"] = (y * (1 + tilt), y * (1 - 0.8 * tilt))
    return Template(y, (rel_stat * y) ** 2 + y, variations)


def shared_names_two_channels():
    """Channels.with_signal, as multi-region jobs write it: qcd, ttbar and signal in both SR1 and
    SR2 (one "staterror" for all bins), qcd's normsys only in SR1, its histosys only in SR2,
    ttbar's cross-section normsys in both with different hi/lo, lumi everywhere."""
    chans = workspace.Channels(
        {
            "SR1": [
                Sample("qcd", _template([400, 220, 90, 30]), SampleSystematics(normsys=[NormSys("qcd_norm", 1.08, 0.9)])),
                Sample("ttbar", _template([40, 30, 12, 4], 0.1), SampleSystematics(normsys=[NormSys("tt_xs", 1.06, 0.93)])),
            ],
            "SR2": [
                Sample("qcd", _template([150, 60, 20], shape=0.15), SampleSystematics(histosys=["shape"])),
                Sample("ttbar", _template([25, 12, 5], 0.1), SampleSystematics(normsys=[NormSys("tt_xs", 1.15, 0.8)])),
            ],
        },
        0.02,
    )
    sig = {
        "SR1": Sample("signal", _template([6, 12, 10, 5]), SampleSystematics()),
        "SR2": Sample("signal", _template([3, 6, 4]), SampleSystematics()),
    }
    obs = {"SR1": [412, 240, 105, 38], "SR2": [181, 80, 30]}
    return chans.with_signal(obs, sig)


def signal_in_one_channel():
    """Two channels, the signal (no staterror, or pyhf refuses the shared gammas' mask) only in SR1."""
    qcd = Sample("qcd", _template([300, 150, 50]), SampleSystematics(normsys=[NormSys("qcd_norm", 1.1, 0.92)]))
    qcd2 = Sample("qcd", _template([90, 40]), SampleSystematics(histosys=["shape"]))
    qcd2.template = _template([90, 40], shape=0.2)
    sig = Sample("signal", _template([8, 14, 9]), SampleSystematics(staterror=False, normsys=[NormSys("sig_th", 1.1, 0.9)]))
    chans = {"SR1": [qcd.spec(), sig.spec(poi=True)], "SR2": [qcd2.spec()]}
    obs = {"SR1": [318, 170, 66], "SR2": [95, 37]}
    return workspace.build_workspace(chans, obs, lumi_uncertainty=0.03, poi_bounds=(0.0, 20.0))


def three_channels_per_channel_staterror():
    """SR1, SR2 and a control region CR; qcd everywhere, ttbar in SR1 and SR2, the signal only in
    SR2; staterror named per channel (staterror_<channel>, HistFactory's convention); qcd's normsys
    only in CR, ttbar's histosys only in SR1, its normsys in both with different hi/lo."""
    s = lambda name, y, rel, **kw: Sample(name, _template(y, rel, kw.pop("shape", None)), SampleSystematics(**kw))  # noqa: E731
    chans = {
        "SR1": [s("qcd", [200, 120, 40], 0.05), s("ttbar", [30, 20, 6], 0.1, shape=0.2, normsys=[NormSys("tt_xs", 1.05, 0.95)],
                                                      histosys=["shape"])],
        "SR2": [s("qcd", [80, 30], 0.08), s("ttbar", [15, 6], 0.1, normsys=[NormSys("tt_xs", 1.2, 0.85)]),
                s("signal", [5, 9], 0.03)],
        "CR": [s("qcd", [900, 500, 200, 60], 0.02, normsys=[NormSys("qcd_norm", 1.12, 0.9)])],
    }
    specs = {}
    for ch, samples in chans.items():
        specs[ch] = []
        for sample in samples:
            d = sample.spec(poi=sample.name == "signal")
            for m in d["modifiers"]:
                if m["type"] == "staterror":
                    m["name"] = f"staterror_{ch}"
            specs[ch].append(d)
    obs = {"SR1": [236, 150, 51], "SR2": [101, 47], "CR": [870, 530, 190, 71]}
    return workspace.build_workspace(specs, obs, lumi_uncertainty=0.017, poi_bounds=(0.0, 20.0))


SPECS = {
    "two channels, shared names": shared_names_two_channels,
    "signal in one channel": signal_in_one_channel,
    "three channels": three_channels_per_channel_staterror,
}


@pytest.fixture(scope="module", params=list(SPECS))
def case(request):
    spec = SPECS[request.param]()
    ws = pyhf.Workspace(spec)
    model = ws.model()
    return request.param, spec, model, np.asarray(ws.data(model), dtype=float)


def _points(fast, n_random=6, seed=3):
    """Nominal, then every nuisance pulled by +-0.3 .. +-2 sigma with random signs, then uniform in +-2 sigma."""
    rng = np.random.default_rng(seed)
    lo, hi = fast.bounds[:, 0], fast.bounds[:, 1]
    out = [fast.init.copy()]
    for size in (0.3, 0.8, 1.0, 1.4, 2.0):
        p = fast.init + np.where(fast.fixed, 0.0, size * rng.choice([-1.0, 1.0], fast.npars) * fast.scale)
        p[fast.poi_index] = 0.5 + size
        out.append(p)
    for _ in range(n_random):
        p = fast.init + np.where(fast.fixed, 0.0, rng.uniform(-2, 2, fast.npars) * fast.scale)
        p[fast.poi_index] = rng.uniform(0, 3)
        out.append(p)
    return [np.clip(p, lo + 1e-9, hi) for p in out]


def _pyhf_logpdf_and_grad(spec, pars_list, data):
    """pyhf's logpdf and its autodiff gradient (pytorch backend, 64 bit)."""
    import torch

    pyhf.set_backend("pytorch", precision="64b")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Creating a tensor from a list", UserWarning)  # pyhf's own tensors
            model = pyhf.Workspace(spec).model()
            out = []
            for pars in pars_list:
                p = torch.tensor(pars, requires_grad=True)
                lp = model.logpdf(p, torch.tensor(data))[0]
                lp.backward()
                out.append((lp.item(), p.grad.numpy().copy()))
            return out
    finally:
        pyhf.set_backend("numpy")


def test_shared_sample_rows_are_split_by_channel():
    """The colleague's repro: the sample name in both channels builds, one row per channel; lumi
    scales every bin once; qcd_norm moves only SR1's qcd; shape only SR2's."""
    model = pyhf.Workspace(shared_names_two_channels()).model()
    fast = FastModel(model)
    assert fast.rows == [("qcd", "SR1"), ("qcd", "SR2"), ("signal", "SR1"), ("signal", "SR2"), ("ttbar", "SR1"), ("ttbar", "SR2")]
    nominal = fast.expected_actualdata(fast.init)
    cfg = model.config
    p = fast.init.copy()
    p[cfg.par_slice("lumi")] = 1.05
    np.testing.assert_allclose(fast.expected_actualdata(p), 1.05 * nominal, rtol=1e-13)
    p = fast.init.copy()
    p[cfg.par_slice("qcd_norm")] = 1.0  # +1 sigma: qcd x 1.08 in SR1 only
    qcd_sr1 = np.array([400, 220, 90, 30.0])
    np.testing.assert_allclose(fast.expected_actualdata(p) - nominal, np.r_[0.08 * qcd_sr1, 0, 0, 0], atol=1e-9)
    p = fast.init.copy()
    p[cfg.par_slice("shape")] = 1.0
    # +1 sigma: qcd's up template in SR2 (150, 60, 20) x (1.15, 1, 0.85), SR1 untouched
    np.testing.assert_allclose(fast.expected_actualdata(p) - nominal, [0, 0, 0, 0, 22.5, 0, -3.0], atol=1e-9)
    # one staterror parameter set of 7 gammas, gamma k in bin k, on every sample of that bin
    assert cfg.par_slice("staterror") == slice(cfg.par_slice("staterror").start, cfg.par_slice("staterror").start + 7)
    np.testing.assert_array_equal(fast.stat_index[0], np.r_[np.arange(4) + cfg.par_slice("staterror").start, [-1] * 3])


def test_expected_data_logpdf_and_gradient_equal_pyhf(case):
    name, spec, model, data = case
    fast = FastModel(model)
    points = _points(fast)
    # data away from the expectation (not Asimov), so the gradient is not zero
    n = np.round(np.asarray(model.expected_actualdata(fast.init)) * 1.1 + 0.3)
    data = np.concatenate([n, data[fast.nbins:] + 0.3 * fast.constr_sigma])
    reference = _pyhf_logpdf_and_grad(spec, points, data)
    aux = data[fast.nbins:]
    for pars, (lp_pyhf, grad_pyhf) in zip(points, reference):
        np.testing.assert_allclose(fast.expected_data(pars), model.expected_data(pars), rtol=1e-12, err_msg=name)
        assert fast.logpdf(pars, data) == pytest.approx(lp_pyhf, rel=1e-11), name
        _, g = fast.nll_and_grad(pars, n, aux)
        np.testing.assert_allclose(-g, grad_pyhf, rtol=1e-8, atol=1e-8 * np.max(np.abs(grad_pyhf)), err_msg=name)
    # the batched paths (toys): yields, logpdf and the Jacobian in the fitter's (JK, JG) layout
    P = np.array(points)
    np.testing.assert_allclose(fast.expected_actualdata_many(P), [model.expected_actualdata(p) for p in P], rtol=1e-12)
    np.testing.assert_allclose(fast.logpdf_many(P, np.tile(n, (len(P), 1)), np.tile(aux, (len(P), 1))),
                               [r[0] for r in reference], rtol=1e-11)
    fast._prepare_many()
    lam, JK, JG, _ = fast._jacobian_many(P)
    for t, pars in enumerate(P):
        lam1, J = fast.jacobian(pars)
        full = np.zeros_like(J)
        full[:, fast._others] = JK[t].T
        full[fast._gamma_bin, fast._gammas] += JG[t]
        np.testing.assert_allclose(lam[t], lam1, rtol=1e-12)
        np.testing.assert_allclose(full, J, rtol=1e-10, atol=1e-10 * np.abs(J).max(), err_msg=name)


def test_best_fits_equal_pyhf(case):
    name, spec, model, data = case
    fast = FastModel(model)
    ours = fast.fit(data)
    theirs, twice_nll = pyhf.infer.mle.fit(data, model, return_fitted_val=True)
    assert ours.success
    assert 2 * ours.nll == pytest.approx(float(twice_nll), abs=2e-4), name
    assert 2 * ours.nll <= float(twice_nll) + 1e-6, name  # at least as far down as pyhf's minimiser
    np.testing.assert_allclose(ours.pars, np.asarray(theirs), atol=0.01 * fast.scale.max() + 5e-3, err_msg=name)
    cond = fast.fit(data, fixed_values={fast.poi_index: 2.0})
    theirs_c, twice_nll_c = pyhf.infer.mle.fixed_poi_fit(2.0, data, model, return_fitted_val=True)
    assert 2 * cond.nll == pytest.approx(float(twice_nll_c), abs=2e-4), name
    assert cond.pars[fast.poi_index] == 2.0


def test_toy_fits_compiled_equal_numpy_and_one_by_one(case):
    name, spec, model, data = case
    fast = FastModel(model)
    rng = np.random.default_rng(8)
    T = 80
    lam = fast.expected_actualdata(fast.init)
    n = rng.poisson(lam * rng.uniform(0.8, 1.3, (T, 1)), (T, lam.size)).astype(float)
    aux = fast.expected_auxdata(fast.init) + fast.constr_sigma * rng.standard_normal((T, fast.constr_index.size))
    start = np.clip(fast.init + np.where(fast.fixed, 0.0, rng.uniform(-2, 2, (T, fast.npars)) * fast.scale),
                    fast.bounds[:, 0] + 1e-3, fast.bounds[:, 1])
    for fixed in (None, {fast.poi_index: 1.5}):
        c = fast.fit_many(n, aux, start, fixed_values=fixed)
        p = fast.fit_many(n, aux, start, fixed_values=fixed, compiled=False)
        assert c.success.all() and p.success.all(), name
        np.testing.assert_allclose(c.nll, p.nll, rtol=1e-12, err_msg=name)
        np.testing.assert_allclose(c.pars, p.pars, atol=1e-6, err_msg=name)
        one = [fast.fit(np.concatenate([n[i], aux[i]]), fixed_values=fixed) for i in range(0, T, 8)]
        np.testing.assert_allclose(c.nll[::8], [r.nll for r in one], atol=1e-7, err_msg=name)
    # and a toy's NLL is pyhf's -logpdf at the fitted point
    i = 3
    assert c.nll[i] == pytest.approx(-float(model.logpdf(c.pars[i], np.concatenate([n[i], aux[i]]))[0]), rel=1e-11)


def test_asymptotic_limit_equals_pyhf():
    ws = pyhf.Workspace(shared_names_two_channels())
    model = ws.model()
    data = ws.data(model)
    ours = limits.upper_limit(model, data)
    obs_pyhf, exp_pyhf, _ = pyhf.infer.intervals.upper_limits.toms748_scan(data, model, 0.01, 10.0, from_upper_limit_fn=True)
    assert ours.converged
    assert ours.observed == pytest.approx(float(obs_pyhf), rel=5e-3)
    np.testing.assert_allclose(ours.expected, np.asarray(exp_pyhf, dtype=float), rtol=5e-3)


def test_asymptotic_limit_cls_is_the_level_in_pyhf():
    """Three channels: CLs at our observed and median limits is 0.05 according to pyhf's hypotest."""
    ws = pyhf.Workspace(three_channels_per_channel_staterror())
    model = ws.model()
    data = ws.data(model)
    ours = limits.upper_limit(model, data)
    cls_obs, cls_exp = pyhf.infer.hypotest(ours.observed, data, model, test_stat="qtilde", return_expected_set=True)
    assert float(cls_obs) == pytest.approx(0.05, rel=2e-2)
    _, cls_exp = pyhf.infer.hypotest(ours.median, data, model, test_stat="qtilde", return_expected_set=True)
    assert float(cls_exp[2]) == pytest.approx(0.05, rel=2e-2)


def test_toy_limit_compiled_equals_numpy(monkeypatch):
    ws = pyhf.Workspace(signal_in_one_channel())
    model = ws.model()
    data = np.asarray(ws.data(model), dtype=float)
    compiled = limits.upper_limit(model, data, calculator="toys", n_toys=300, seed=2)
    real = FastModel.fit_many
    monkeypatch.setattr(FastModel, "fit_many", lambda self, *a, **k: real(self, *a, **{**k, "compiled": False}))
    numpy_path = limits.upper_limit(model, data, calculator="toys", n_toys=300, seed=2)
    assert compiled.converged and numpy_path.converged
    assert compiled.observed == pytest.approx(numpy_path.observed, rel=1e-6)
    np.testing.assert_allclose(compiled.expected, numpy_path.expected, rtol=1e-6)
    # 300 toys: a few per cent from the asymptotic limits at these counts
    asym = limits.upper_limit(model, data)
    assert compiled.median == pytest.approx(asym.median, rel=0.15)


def test_two_staterrors_on_one_sample_in_one_channel_are_refused():
    spec = signal_in_one_channel()
    qcd = spec["channels"][0]["samples"][0]
    qcd["modifiers"].append({"name": "other_stat", "type": "staterror", "data": [1.0, 1.0, 1.0]})
    with pytest.raises(UnsupportedModelError, match="sample 'qcd' carries two staterror modifiers in channel 'SR1'"):
        FastModel(pyhf.Workspace(spec).model())


def test_kappa_profile_scan_on_two_regions():
    """The kappa_lambda scan (one model per grid point, warm starts carried over by parameter name)
    on a two-region Channels: Asimov data at kappa_lambda = 3 give the minimum there."""
    chans = workspace.Channels(
        {
            "SR1": [Sample("qcd", _template([500, 260, 90]), SampleSystematics(normsys=[NormSys("qcd_norm", 1.06, 0.95)]))],
            "SR2": [Sample("qcd", _template([120, 50]), SampleSystematics())],
        },
        0.02,
    )
    # per-bin quadratics in kappa_lambda with different shapes: no mirror solution
    coef = {"SR1": np.array([[20, -8, 1.0], [12, -5, 0.9], [6, -1, 0.4]]), "SR2": np.array([[8, -2, 0.5], [4, -2.5, 0.6]])}

    def signal_at(k):
        return {ch: Sample("signal", _template(c @ [1.0, k, k * k]), SampleSystematics()) for ch, c in coef.items()}

    obs = chans.asimov(signal_at(3.0), 1.0)
    scan = kappa.kappa_profile_scan(chans, signal_at, np.linspace(-4, 10, 15), obs)
    assert scan["converged"]
    assert scan["best_fit"] == pytest.approx(3.0, abs=0.02)
    iv = scan["interval"]
    assert iv["lower"] < 3.0 < iv["upper"]


def test_self_check_accepts_points_where_a_template_makes_a_yield_negative():
    """A histosys whose templates lie far below nominal gives a negative yield at |alpha| >= 1.4
    (code 4p extrapolates linearly): pyhf's logpdf is nan there, FastModel floors the yield. The
    self-check then compares the yields, and FastModel is built (the demo's v3 samples have such a bin)."""
    spec = {"channels": [{"name": "SR", "samples": [
        {"name": "signal", "data": [1.0, 2.0], "modifiers": [{"name": "mu", "type": "normfactor", "data": None}]},
        {"name": "bkg", "data": [10.0, 20.0], "modifiers": [
            {"name": "shape", "type": "histosys", "data": {"hi_data": [2.0, 19.0], "lo_data": [2.0, 21.0]}}]},
    ]}]}
    model = pyhf.Model(spec, validate=False)
    fast = FastModel(model)  # raised "logpdf -inf differs from pyhf's nan" before
    pars = fast.init.copy()
    pars[model.config.par_slice("shape")] = -2.0
    data = np.array([12.0, 22.0, 0.0])
    assert fast.expected_actualdata(pars)[0] == pytest.approx(1.0 + 10.0 - 2.0 * 8.0)  # signal + bkg: -5
    assert np.allclose(fast.expected_actualdata(pars), model.expected_actualdata(pars), rtol=1e-12)
    assert np.isnan(float(np.asarray(model.logpdf(pars, data)).ravel()[0]))
    pars[model.config.par_slice("shape")] = 0.5
    assert fast.logpdf(pars, data) == pytest.approx(float(model.logpdf(pars, data)[0]), rel=1e-10)
