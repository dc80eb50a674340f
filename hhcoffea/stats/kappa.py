"""Constraints on kappa_lambda, both ways the reference analysis does it, and equivalent luminosity.

(a) **CLs, mu as POI** (:func:`kappa_cls_scan`): for every kappa_lambda of the grid the signal is the
    three-basis template at that kappa_lambda (:mod:`hhcoffea.stats.morphing`), normalised to its
    predicted sigma(kappa_lambda); a 95% CL CLs upper limit on mu follows
    (:mod:`hhcoffea.stats.limits`). kappa_lambda is excluded where the prediction exceeds the
    limit, i.e. where ``mu_up(kappa_lambda) < 1``; the allowed interval is where ``mu_up >= 1``
    (edges root-found between the grid points that bracket them). The expected interval uses
    the median expected limit, the observed one the limit on the data. When the SM itself is
    excluded (``mu_up(kappa_lambda = 1) < 1``, e.g. at >= 1000 fb^-1 with background-only data) the
    result says so (``sm_excluded``) and gives no width: the allowed region is then no constraint
    around the SM, and the profile-likelihood interval on SM Asimov data is the expected one.

(b) **Profile likelihood, kappa_lambda as POI** (:func:`kappa_profile_scan`): the model's signal
    strength is fixed to 1 whatever the data (background-only data give a scan that rises where
    the predicted signal grows) and kappa_lambda enters through the morphed template;
    ``-2 ln L(kappa_lambda)`` is minimised over all nuisance parameters at every grid
    point (the constraint terms without their kappa-dependent normalisation constants), the global
    minimum is refined between grid points, and the interval is where
    ``-2 Delta ln L < 1.96^2`` (``constants.PROFILE_SCAN_THRESHOLD``), edges root-found.

Every fit's convergence is recorded; a scan with a failed fit (after a retry from the model's
initial values) has ``converged: false`` and lists the kappa_lambda values. The data are whatever
the caller passes (:mod:`hhcoffea.stats.config` states which hypothesis).

:func:`equivalent_luminosity` finds the luminosity at which a baseline selection reaches the width
Delta kappa_lambda of a better one (reference: mixing SPANet2 at 300 fb^-1 <-> min-Delta R DNN at
about 400 fb^-1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyhf
from scipy.optimize import brentq, minimize_scalar

from .. import constants
from .likelihood import FastModel
from .limits import LimitResult, make_calculator, transfer_pars
from .workspace import Channels, Sample

__all__ = [
    "Interval",
    "allowed_interval",
    "kappa_cls_scan",
    "kappa_profile_scan",
    "equivalent_luminosity",
]

SignalAt = Callable[[float], Mapping[str, Sample]]


@dataclass
class Interval:
    """An allowed kappa_lambda region: outermost bounds, width and the allowed segments.

    A bound is ``None`` when the region reaches the end of the scanned grid (open there).
    """

    lower: float | None
    upper: float | None
    segments: list[tuple[float, float]]

    @property
    def empty(self) -> bool:
        """No allowed point on the grid (every kappa_lambda excluded)."""
        return not self.segments

    @property
    def width(self) -> float | None:
        if self.lower is None or self.upper is None:
            return None
        return self.upper - self.lower

    def contains(self, value: float) -> bool:
        return any(lo <= value <= hi for lo, hi in self.segments)

    def to_dict(self) -> dict:
        return {
            "lower": self.lower,
            "upper": self.upper,
            "width": self.width,
            "empty": self.empty,
            "segments": [list(s) for s in self.segments],
        }


def allowed_interval(
    x: Sequence[float], y: Sequence[float], threshold: float, func: Callable[[float], float] | None = None
) -> Interval:
    """Region of ``x`` where ``y <= threshold``, edges at the crossings of the curve.

    Args:
        x: increasing grid.
        y: values on the grid (e.g. ``-2 Delta ln L`` or ``-log mu_up``).
        threshold: allowed where ``y <= threshold``.
        func: the curve itself; each edge is then its root (Brent) between the two grid points
            that bracket it, otherwise the linear interpolation between them.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    ok = y <= threshold
    segments: list[tuple[float, float]] = []
    open_lo = open_hi = False
    i = 0
    while i < len(x):
        if not ok[i]:
            i += 1
            continue
        j = i
        while j + 1 < len(x) and ok[j + 1]:
            j += 1

        def cross(a: int, b: int) -> float:
            linear = float(x[a] + (threshold - y[a]) * (x[b] - x[a]) / (y[b] - y[a]))
            if func is None:
                return linear
            try:
                return float(brentq(lambda k: func(k) - threshold, x[a], x[b], xtol=1e-5))
            except ValueError:  # the curve between the grid points does not bracket: keep linear
                return linear

        lo = cross(i - 1, i) if i > 0 else float(x[0])
        hi = cross(j, j + 1) if j + 1 < len(x) else float(x[-1])
        open_lo |= i == 0
        open_hi |= j + 1 == len(x)
        segments.append((lo, hi))
        i = j + 1
    if not segments:
        return Interval(None, None, [])
    return Interval(None if open_lo else segments[0][0], None if open_hi else segments[-1][1], segments)


def _model(channels: Channels, observations, signal) -> tuple[FastModel, np.ndarray]:
    # specs built here follow the schema by construction (tested); skip the slow re-validation,
    # but not FastModel's comparison with pyhf (a few logpdf calls)
    ws = pyhf.Workspace(channels.with_signal(observations, signal, validate=False), validate=False)
    fast = FastModel(ws.model(validate=False))
    return fast, np.asarray(ws.data(fast.model), dtype=float)


def kappa_cls_scan(
    channels: Channels,
    signal_at: SignalAt,
    kappas: Sequence[float],
    observations: Mapping[str, Sequence[float]],
    *,
    xsec_at: Callable[[float], float] | None = None,
    level: float = constants.CLS_LEVEL,
    calculator: str = "asymptotic",
    n_toys: int = 10000,
    seed: int = 0,
    refine: bool = True,
) -> dict:
    """Method (a): CLs limits on mu at every kappa_lambda and the allowed intervals.

    Returns a dict with the grid, per-point limits (mu and, with ``xsec_at``, cross sections in
    fb), the ``expected`` (median) and ``observed`` intervals, ``sm_median_mu_limit`` and
    ``sm_excluded`` (the median expected limit at kappa_lambda = 1 is below mu = 1; the expected
    interval's width is then None), ``converged`` and ``failed_points``. With ``refine`` (and the
    asymptotic calculator) the interval edges are root-found; toy limits are too noisy for that,
    their edges are interpolated linearly in ``log mu_up``.
    """
    kappas = [float(k) for k in kappas]
    results: list[LimitResult] = []
    starts: dict[float, tuple[FastModel, np.ndarray]] = {}

    def limit_at(k: float) -> LimitResult:
        fast, data = _model(channels, observations, signal_at(k))
        near = min(starts, key=lambda m: abs(m - k)) if starts else None
        init = None if near is None else transfer_pars(*starts[near], fast)
        calc = make_calculator(fast, data, level=level, init=init, calculator=calculator, n_toys=n_toys, seed=seed)
        res = calc.result()
        starts[k] = (fast, calc.bkg_pars)
        return res

    results = [limit_at(k) for k in kappas]
    med = np.array([r.median for r in results])
    obs = np.array([r.observed for r in results])
    band = np.array([r.expected for r in results])
    smooth = refine and calculator == "asymptotic"
    extra: dict[float, LimitResult] = {}

    def extra_at(k: float) -> LimitResult:
        if k not in extra:
            extra[k] = limit_at(k)
        return extra[k]

    expected = allowed_interval(kappas, -np.log(med), 0.0, (lambda k: -math.log(extra_at(k).median)) if smooth else None)
    observed = allowed_interval(kappas, -np.log(obs), 0.0, (lambda k: -math.log(extra_at(k).observed)) if smooth else None)
    sm = extra_at(constants.KAPPA_LAMBDA_SM) if constants.KAPPA_LAMBDA_SM not in kappas else results[kappas.index(constants.KAPPA_LAMBDA_SM)]
    sm_excluded = sm.median < 1.0
    exp_dict = expected.to_dict()
    if sm_excluded:
        exp_dict["width"] = None  # no constraint around the SM: the SM itself is excluded
    failed = [k for k, r in zip(kappas, results) if not r.converged] + [k for k, r in extra.items() if not r.converged]
    out = {
        "kappa_lambda": kappas,
        "calculator": calculator,
        "mu_limit": {
            "observed": obs.tolist(),
            "expected": band.tolist(),
        },
        "expected": exp_dict,
        "observed": observed.to_dict(),
        "sm_median_mu_limit": sm.median,
        "sm_excluded": bool(sm_excluded),
        "converged": not failed,
        "failed_points": sorted(set(failed)),
    }
    if calculator == "toys":
        out.update(n_toys=n_toys, seed=seed)
    if xsec_at is not None:
        xs = np.array([xsec_at(k) for k in kappas])
        out["xsec_fb"] = xs.tolist()
        out["xsec_limit_fb"] = {"observed": (obs * xs).tolist(), "expected": (band * xs[:, None]).tolist()}
    return out


def kappa_profile_scan(
    channels: Channels,
    signal_at: SignalAt,
    kappas: Sequence[float],
    observations: Mapping[str, Sequence[float]],
    *,
    mu: float = 1.0,
    threshold: float = constants.PROFILE_SCAN_THRESHOLD,
    refine: bool = True,
) -> dict:
    """Method (b): ``-2 Delta ln L`` over the kappa_lambda grid with nuisance parameters profiled.

    Args:
        mu: the model's signal strength (1: the predicted sigma(kappa_lambda)), independent of
            which hypothesis generated ``observations``.
        refine: refine the minimum between grid points and root-find the interval edges.

    Returns a dict with the grid, ``-2 Delta ln L`` values, the best-fit kappa_lambda, the
    ``interval`` where the curve is below ``threshold``, ``converged`` and ``failed_points``.
    """
    kappas = [float(k) for k in kappas]
    prev = None
    cache: dict[float, float] = {}
    failed: list[float] = []

    def twice_nll(k: float) -> float:
        nonlocal prev
        if k in cache:
            return cache[k]
        fast, data = _model(channels, observations, signal_at(k))
        init = fast.init if prev is None else transfer_pars(prev[0], prev[1], fast)
        res = fast.fit(data, init=init, fixed_values={fast.poi_index: mu})
        if not res.success:  # retry from the model's own starting point
            retry = fast.fit(data, init=fast.init, fixed_values={fast.poi_index: mu})
            if retry.success or retry.nll < res.nll:
                res = retry
            if not res.success:
                failed.append(k)
        prev = (fast, res.pars)
        # drop the Gaussian normalisation constants: they depend on kappa_lambda through the
        # signal's MC-statistics share of the staterror widths and are no part of the likelihood shape
        cache[k] = 2.0 * (res.nll - fast.constraint_normalisation)
        return cache[k]

    values = np.array([twice_nll(k) for k in kappas])
    i = int(np.argmin(values))
    best_k, best = kappas[i], float(values[i])
    if refine and len(kappas) > 2:
        lo = kappas[max(i - 1, 0)]
        hi = kappas[min(i + 1, len(kappas) - 1)]
        res = minimize_scalar(twice_nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-4})
        if res.fun < best:
            best_k, best = float(res.x), float(res.fun)
    delta = values - best
    interval = allowed_interval(kappas, delta, threshold, (lambda k: twice_nll(k) - best) if refine else None)
    return {
        "kappa_lambda": kappas,
        "minus_two_delta_nll": delta.tolist(),
        "best_fit": best_k,
        "threshold": threshold,
        "mu": mu,
        "interval": interval.to_dict(),
        "converged": not failed,
        "failed_points": sorted(set(failed)),
    }


def equivalent_luminosity(
    width_at: Callable[[float], float | None],
    target_width: float,
    lumi_range: tuple[float, float],
    *,
    rtol: float = 1e-3,
) -> float | None:
    """Luminosity at which ``width_at(L)`` (a Delta kappa_lambda, decreasing in L) equals ``target_width``.

    Solved by Brent's method in log L within ``lumi_range``; ``None`` if not bracketed there.
    """

    def f(log_l: float) -> float:
        w = width_at(math.exp(log_l))
        return (w if w is not None else 1e6) - target_width  # an open interval counts as very wide

    a, b = math.log(lumi_range[0]), math.log(lumi_range[1])
    fa, fb = f(a), f(b)
    if not (fa >= 0 >= fb):
        return None
    return float(math.exp(brentq(f, a, b, xtol=rtol)))
