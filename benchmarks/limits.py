"""Wall time of hhcoffea's limit scans beside pyhf's plain ``upper_limit(..., scan=None)``.

Model: one 20-bin m_hh channel, QCD + ttbar backgrounds and a signal, with staterror, a 1.7%
luminosity uncertainty and three normsys (the layout hhcoffea.stats.workspace writes), observed
data a fixed Poisson fluctuation of the background.

* m_X scan: 10 resonant mass points (Gaussian peaks, 300..1200 GeV), one patch each.
* kappa_lambda scan: 51 points of the three-basis morphed non-resonant signal, CLs limit on mu at
  each (method (a)); the profile-likelihood scan (method (b)) is timed too.

pyhf's plain ``upper_limit`` takes tens of seconds per point on such a model, so it is run on a
subset (3 points of each scan, spread over the grid) and its time per point is extrapolated to the
whole scan; the printout says so. Limits are compared point by point on that subset.

* toys: the toy-based CLs calculator (``upper_limit(..., calculator="toys")``, 10,000 toys per
  hypothesis) at a few m_X points, CPU time per limit on one core (BLAS threads set to 1), beside
  the asymptotic limits of the same points. The toy fits run in a numba kernel: its one-off cost
  (compilation on a machine's first run, loading numba and the cached code afterwards) is timed
  on its own line, before the limits.

Run: ``python benchmarks/limits.py [--pyhf-points 3] [--toy-points 2] [--n-toys 10000] [--toy-repeats 1]``.
"""

from __future__ import annotations

import argparse
import os
import time

# one core: the toy timing target is per core (set before numpy loads BLAS)
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402 (after the thread settings)
import pyhf  # noqa: E402
from scipy.stats import norm  # noqa: E402

from hhcoffea.stats import kappa as kappa_mod  # noqa: E402
from hhcoffea.stats import limits, morphing, workspace  # noqa: E402
from hhcoffea.stats.likelihood import FastModel  # noqa: E402

EDGES = np.linspace(250.0, 1250.0, 21)
CENTERS = 0.5 * (EDGES[1:] + EDGES[:-1])
MH = 125.0


def _channels() -> tuple[workspace.Channels, dict]:
    qcd = 6000.0 * np.exp(-(CENTERS - 250.0) / 200.0) + 20.0
    tt = 400.0 * np.exp(-(((CENTERS - 450.0) / 180.0) ** 2)) + 5.0
    chans = workspace.Channels(
        {
            "SR": [
                workspace.Sample(
                    "qcd",
                    workspace.Template(qcd, 0.002 * qcd**2 + qcd),
                    workspace.SampleSystematics(normsys=[workspace.NormSys("qcd_norm", 1.05, 0.95)]),
                ),
                workspace.Sample(
                    "ttbar",
                    workspace.Template(tt, 0.01 * tt**2 + tt),
                    workspace.SampleSystematics(normsys=[workspace.NormSys("ttbar_xs", 1.06, 0.93)]),
                ),
            ]
        },
        lumi_uncertainty=0.017,
    )
    rng = np.random.default_rng(42)
    obs = {"SR": rng.poisson(qcd + tt).astype(float)}
    return chans, obs


_SIG_SYST = workspace.SampleSystematics(normsys=[workspace.NormSys("sig_theory", 1.1, 0.9)])


def resonant_signal(m_x: float) -> dict[str, workspace.Sample]:
    y = 400.0 * (300.0 / m_x) ** 2 * np.diff(norm.cdf(EDGES, m_x, 0.06 * m_x))
    return {"SR": workspace.Sample("signal", workspace.Template(y, (0.05 * y) ** 2), _SIG_SYST)}


def _nonres_parts():
    s = CENTERS**2
    B = -2.0 / 3.0
    T = 3 * MH**2 / (s - MH**2) * (2.0 / 3.0)
    w = np.exp(-CENTERS / 180.0) * (CENTERS / 250.0) ** 2
    return B * B * w, 2 * B * T * w, T * T * w


_PARTS = _nonres_parts()
_NORM = 60.0 / sum(p.sum() for p in _PARTS)  # ~60 SM events in the channel
BASIS_K = [1.0, 5.0, 10.0]
_BASIS = [
    workspace.Template(y, (0.03 * y) ** 2)
    for y in ((_PARTS[0] + k * _PARTS[1] + k * k * _PARTS[2]) * _NORM for k in BASIS_K)
]


def nonres_signal(k: float) -> dict[str, workspace.Sample]:
    return {"SR": workspace.Sample("signal", morphing.morph_template(BASIS_K, _BASIS, k, clip=True), _SIG_SYST)}


def _pyhf_limit(spec: dict) -> tuple[float, list[float], float]:
    ws = pyhf.Workspace(spec)
    model = ws.model()
    t0 = time.perf_counter()
    try:
        obs, exp = pyhf.infer.intervals.upper_limits.upper_limit(ws.data(model), model, scan=None)
    except ValueError:
        # pyhf's root finder starts at the POI's lower bound, mu = 0, where q_mu_A is 0/0 for some
        # models ("function value at x=0.0 is NaN"); start just above it instead
        low, high = model.config.suggested_bounds()[model.config.par_slice(model.config.poi_name).start]
        obs, exp, _ = pyhf.infer.intervals.upper_limits.toms748_scan(
            ws.data(model), model, max(low, 1e-6), high, from_upper_limit_fn=True
        )
    return float(obs), [float(e) for e in exp], time.perf_counter() - t0


def _ours(chans, obs, signals) -> tuple[list[limits.LimitResult], float]:
    t0 = time.perf_counter()
    bkg = chans.background_only(obs)
    specs = []
    for sig in signals:
        ws = pyhf.Workspace(bkg)
        patch = pyhf.patchset.Patch({"metadata": {"name": "p", "values": [0]}, "patch": chans.signal_patch(bkg, sig)})
        specs.append(dict(patch.apply(ws)))
    res = [r for r, _, _ in limits.scan_upper_limits(specs)]
    return res, time.perf_counter() - t0


def _compare(name, grid, ours, chans, obs, signal_at, n_pyhf) -> tuple[float, float]:
    sub = np.unique(np.linspace(0, len(grid) - 1, n_pyhf).round().astype(int))
    worst, t_pyhf = 0.0, 0.0
    for i in sub:
        p_obs, p_exp, dt = _pyhf_limit(chans.with_signal(obs, signal_at(grid[i])))
        t_pyhf += dt
        r = ours[i]
        rel = max(abs(r.observed / p_obs - 1), *(abs(a / b - 1) for a, b in zip(r.expected, p_exp)))
        worst = max(worst, rel)
        print(f"  {name}={grid[i]:>7.4g}: obs {r.observed:.4f} vs pyhf {p_obs:.4f}; median {r.median:.4f} vs {p_exp[2]:.4f}; "
              f"max rel diff {rel:.1e}  (pyhf {dt:.1f} s)")
    return t_pyhf / len(sub), worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pyhf-points", type=int, default=3, help="points per scan run with plain pyhf (each takes 0.5-2 min)")
    ap.add_argument("--toy-points", type=int, default=2, help="m_X points with the toy calculator")
    ap.add_argument("--n-toys", type=int, default=10000, help="toys per hypothesis")
    ap.add_argument("--toy-repeats", type=int, default=1, help="toy limits computed this many times per m_X point")
    ap.add_argument("--toys-only", action="store_true", help="only the toy calculator's timing")
    args = ap.parse_args()
    chans, obs = _channels()
    spec = chans.with_signal(obs, resonant_signal(500.0))
    model = pyhf.Workspace(spec).model()
    print(f"model: {len(CENTERS)} bins, {model.config.npars} parameters ({', '.join(model.config.par_order)})")

    if args.toys_only:
        _toys(chans, obs, args)
        return
    masses = np.linspace(300.0, 1200.0, 10)
    ours_m, t_m = _ours(chans, obs, [resonant_signal(m) for m in masses])
    print(f"\nm_X scan, {len(masses)} points: hhcoffea {t_m:.2f} s")
    per_m, worst_m = _compare("m_X", masses, ours_m, chans, obs, resonant_signal, args.pyhf_points)

    kappas = np.linspace(-6.0, 14.0, 51)
    t0 = time.perf_counter()
    cls = kappa_mod.kappa_cls_scan(chans, nonres_signal, kappas, obs)
    t_k = time.perf_counter() - t0
    ours_k = [
        limits.LimitResult(observed=o, expected=e, mu_hat=0.0)
        for o, e in zip(cls["mu_limit"]["observed"], cls["mu_limit"]["expected"])
    ]
    print(f"\nkappa_lambda CLs scan (mu as POI), {len(kappas)} points: hhcoffea {t_k:.2f} s")
    per_k, worst_k = _compare("kappa", kappas, ours_k, chans, obs, nonres_signal, args.pyhf_points)
    sm_asimov = chans.asimov(nonres_signal(1.0), 1.0)
    t0 = time.perf_counter()
    prof = kappa_mod.kappa_profile_scan(chans, nonres_signal, kappas, sm_asimov)
    t_p = time.perf_counter() - t0
    iv = prof["interval"]
    print(
        f"kappa_lambda profile-likelihood scan (SM Asimov), {len(kappas)} points: hhcoffea {t_p:.2f} s "
        f"(best fit {prof['best_fit']:.3f}, interval {iv['lower']} .. {iv['upper']})"
    )

    est_m, est_k = per_m * len(masses), per_k * len(kappas)
    print("\nsummary (plain pyhf time = mean per point on the subset x number of points: EXTRAPOLATED)")
    print(f"{'scan':<22}{'points':>7}{'hhcoffea [s]':>14}{'pyhf [s]':>12}{'speed-up':>10}{'max rel diff':>14}")
    print(f"{'m_X':<22}{len(masses):>7}{t_m:>14.2f}{est_m:>12.0f}{est_m / t_m:>9.0f}x{worst_m:>14.1e}")
    print(f"{'kappa_lambda (CLs)':<22}{len(kappas):>7}{t_k:>14.2f}{est_k:>12.0f}{est_k / t_k:>9.0f}x{worst_k:>14.1e}")
    ok = min(est_m / t_m, est_k / t_k) >= 10 and max(worst_m, worst_k) < 0.01
    print(f"target (>= 10x faster, limits within 1%): {'met' if ok else 'NOT met'}")
    _toys(chans, obs, args)


def _kernel_warmup(fast: FastModel) -> None:
    """Time the toy kernel's one-off cost: numba's compilation (first run on a machine) or the
    loading of numba and its cached machine code (later runs)."""
    from hhcoffea.stats import toy_kernels  # imported here: its import time is part of the one-off

    c0 = time.process_time()
    lam = fast.expected_actualdata(fast.init)
    fast.fit_many(np.round(lam)[None].repeat(4, axis=0), np.tile(fast.expected_auxdata(fast.init), (4, 1)), fast.init)
    compiled = sum(toy_kernels.fit_toys.stats.cache_misses.values()) > 0
    how = "compiled (no cache yet)" if compiled else "numba imported and the cached kernel loaded"
    print(f"toy kernel one-off: {time.process_time() - c0:.2f} s CPU, {how}; not in the times below")


def _toys(chans, obs, args) -> None:
    """Toy CLs limits at a few m_X points: wall and CPU time per limit (CPU time is what one core
    spends; on a shared machine the wall time also counts other processes)."""
    print(f"\ntoy CLs ({args.n_toys} toys per hypothesis, one core) vs asymptotic:")
    walls, cpus = [], []
    for k, m in enumerate(np.linspace(300.0, 1200.0, args.toy_points + 2)[1:-1]):
        ws = pyhf.Workspace(chans.with_signal(obs, resonant_signal(m)))
        fast = FastModel(ws.model())
        if k == 0:
            _kernel_warmup(fast)
        data = np.asarray(ws.data(fast.model), dtype=float)
        asym = limits.upper_limit(fast, data)
        for _ in range(max(args.toy_repeats, 1)):
            t0, c0 = time.perf_counter(), time.process_time()
            calc = limits.ToyLimits(fast, data, n_toys=args.n_toys, seed=1)
            toy = calc.result()
            walls.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
            print(
                f"  m_X={m:>6.0f}: {walls[-1]:.2f} s wall, {cpus[-1]:.2f} s CPU ({len(calc._cache)} mu points, "
                f"{calc.n_batched_fits} batched fits); median {toy.median:.3f} vs asymptotic {asym.median:.3f}; "
                f"observed {toy.observed:.3f} vs {asym.observed:.3f}; "
                f"band {', '.join(f'{x:.2f}' for x in toy.expected)} vs {', '.join(f'{x:.2f}' for x in asym.expected)}"
            )
    cpu = float(np.mean(cpus))
    print(
        f"toy CLs, {args.n_toys} toys: {float(np.mean(walls)):.2f} s wall, {cpu:.2f} s CPU per m_X point "
        f"(range {min(cpus):.2f}-{max(cpus):.2f} s over {len(cpus)} limits; target < 2 s): {'met' if cpu < 2 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
