"""Fast asymptotic CLs upper limits on the signal strength (pyhf's definitions, fewer fits).

The numbers are those of ``pyhf.infer.intervals.upper_limit`` with the ``qtilde`` test statistic
and the asymptotic calculator (``calc_base_dist="normal"``, arXiv:1007.1727):

* ``q~_mu`` = 2 (NLL(mu, theta^^) - NLL(mu^, theta^)), 0 if mu^ > mu, with mu^ >= 0;
* the Asimov dataset is the expectation at the background-only fit to the data (``mu = 0``,
  nuisance parameters profiled -- so its own best fit is known without fitting);
* ``CLs = Phi(-(t + s)) / Phi(-t)`` with ``s = sqrt(q_mu,A)`` and ``t = sqrt(q_mu) - s``
  (or ``(q_mu - q_mu,A) / 2s`` when ``q_mu > q_mu,A``);
* the expected CLs at ``n`` sigma is ``Phi(-(n + s)) / Phi(-n)``, so the expected limit of band
  ``n`` is where ``sqrt(q_mu,A) = s*_n = -n - Phi^-1(level * Phi(-n))`` -- a closed form in
  ``s``. The band therefore needs only the Asimov fits: ``sigma_A`` from the Fisher
  information at the one background-only fit gives every band's starting point
  ``mu = sigma_A * s*_n``, and a few warm-started conditional Asimov fits solve
  ``sqrt(q_mu,A) = s*_n`` exactly (Newton-like steps on the nearly linear ``sqrt(q_mu,A)``).
* The observed limit is a Brent root of ``log CLs(mu) = log(level)`` bracketed around
  ``mu^ + median``; every conditional fit starts from the nearest one already done.

Fits use :class:`hhcoffea.stats.likelihood.FastModel` (pyhf's likelihood in numpy with an
analytic gradient), so one model is built per patch and reused for all its fits; scans pass the
previous patch's best-fit nuisance parameters on as the next patch's starting point.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np
import pyhf
from scipy.optimize import brentq
from scipy.special import log_ndtr, ndtr, ndtri

from .likelihood import FastModel

__all__ = [
    "LimitResult",
    "AsymptoticLimits",
    "upper_limit",
    "expected_sqrt_qmuA",
    "transfer_pars",
    "BAND_SIGMAS",
]

#: pyhf's order of the expected band: n = 2 .. -2, i.e. limits from -2 sigma to +2 sigma
BAND_SIGMAS = (2.0, 1.0, 0.0, -1.0, -2.0)


def expected_sqrt_qmuA(n_sigma: float, level: float = 0.05) -> float:
    """``s*`` with ``Phi(-(n + s*)) / Phi(-n) = level``: the Asimov sqrt(q) at band ``n``'s limit."""
    return float(-n_sigma - ndtri(level * ndtr(-n_sigma)))


@dataclass
class LimitResult:
    """Observed and expected (-2, -1, 0, +1, +2 sigma) upper limits on mu at ``1 - level`` CL."""

    observed: float
    expected: list[float]
    mu_hat: float
    n_fits: int = 0
    converged: bool = True

    @property
    def median(self) -> float:
        return self.expected[2]

    def to_dict(self) -> dict:
        return asdict(self)


def transfer_pars(src: FastModel, pars: np.ndarray, dst: FastModel) -> np.ndarray:
    """Start values for ``dst`` from best-fit ``pars`` of ``src`` (matched by parameter name)."""
    out = dst.init.copy()
    scfg, dcfg = src.model.config, dst.model.config
    for name in dcfg.par_order:
        if name in scfg.par_map:
            ssl, dsl = scfg.par_slice(name), dcfg.par_slice(name)
            if ssl.stop - ssl.start == dsl.stop - dsl.start:
                out[dsl] = pars[ssl]
    return out


@dataclass
class _Branch:
    """Conditional fits of one dataset, cached by mu, for warm starts."""

    data: np.ndarray
    fits: dict[float, tuple[np.ndarray, float]] = field(default_factory=dict)


class AsymptoticLimits:
    """CLs limits for one model and one dataset (see the module docstring).

    Args:
        model: a :class:`pyhf.Model` or an already built :class:`FastModel`.
        data: observed main data followed by auxiliary data (``model.config.auxdata``).
        level: CLs threshold (0.05 for 95% CL).
        init: starting parameters for the first fits (e.g. from the previous grid point).
        rtol: relative tolerance of the limits.
    """

    def __init__(self, model, data, *, level: float = 0.05, init=None, rtol: float = 1e-5) -> None:
        self.fast = model if isinstance(model, FastModel) else FastModel(model)
        self.level = level
        self.rtol = rtol
        self.poi = self.fast.poi_index
        self.n_fits = 0
        self.data = _Branch(np.asarray(data, dtype=float))
        start = self.fast.init.copy() if init is None else np.asarray(init, dtype=float)
        free = self.fast.fit(self.data.data, init=start)
        self.n_fits += 1
        self.free = free
        self.mu_hat = float(free.pars[self.poi])
        bkg = self._conditional(self.data, 0.0, start=free.pars)
        self.bkg_pars = bkg[0]
        self.asimov = _Branch(self.fast.expected_data(self.bkg_pars))
        # the Asimov likelihood is maximal at the parameters that generated it
        self.asimov_min = self._nll(self.bkg_pars, self.asimov.data)
        self.asimov.fits[0.0] = (self.bkg_pars.copy(), self.asimov_min)
        self.data_is_asimov = bool(np.allclose(self.data.data, self.asimov.data, rtol=1e-10, atol=1e-10))

    # ------------------------------------------------------------------ fits
    def _nll(self, pars: np.ndarray, data: np.ndarray) -> float:
        return -self.fast.logpdf(pars, data)

    def _conditional(self, branch: _Branch, mu: float, start=None) -> tuple[np.ndarray, float]:
        mu = float(mu)
        if mu in branch.fits:
            return branch.fits[mu]
        if start is None:
            if branch.fits:
                nearest = min(branch.fits, key=lambda m: abs(m - mu))
                start = branch.fits[nearest][0]
            else:
                start = self.free.pars
        res = self.fast.fit(branch.data, init=start, fixed_values={self.poi: mu})
        self.n_fits += 1
        branch.fits[mu] = (res.pars, res.nll)
        return branch.fits[mu]

    def qmu_tilde(self, mu: float) -> float:
        """``q~_mu`` on the data (pyhf's ``qmu_tilde``)."""
        if self.mu_hat > mu:
            return 0.0
        nll = self._conditional(self.data, mu)[1]
        return max(2.0 * (nll - self.free.nll), 0.0)

    def qmu_A(self, mu: float) -> float:
        """``q_mu`` on the background-only Asimov dataset."""
        if mu <= 0:
            return 0.0
        nll = self._conditional(self.asimov, mu)[1]
        return max(2.0 * (nll - self.asimov_min), 0.0)

    def sigma_A(self) -> float:
        """Standard deviation of mu^ from the Fisher information of the Asimov dataset."""
        F = self.fast.fisher(self.bkg_pars, self.asimov.data)
        free = ~self.fast.fixed
        cov = np.linalg.pinv(F[np.ix_(free, free)])
        idx = int(np.sum(free[: self.poi]))
        return float(math.sqrt(max(cov[idx, idx], 1e-300)))

    # ------------------------------------------------------------------ CLs
    def log_cls(self, mu: float) -> float:
        """log of the observed CLs at ``mu``."""
        q = self.qmu_tilde(mu)
        qA = self.qmu_A(mu)
        s = math.sqrt(max(qA, 1e-300))
        sq = math.sqrt(q)
        t = sq - s if sq <= s else (q - qA) / (2.0 * s)
        return float(log_ndtr(-(t + s)) - log_ndtr(-t))

    def cls(self, mu: float) -> float:
        return math.exp(self.log_cls(mu))

    def expected_cls(self, mu: float) -> list[float]:
        """Expected CLs at ``mu`` for the band n = 2, 1, 0, -1, -2 (pyhf's ``return_expected_set``)."""
        s = math.sqrt(self.qmu_A(mu))
        return [float(ndtr(-(n + s)) / ndtr(-n)) for n in BAND_SIGMAS]

    # ------------------------------------------------------------------ limits
    def _solve_sqrt_qA(self, target: float, mu0: float) -> float:
        """mu with sqrt(q_mu,A) = target, by steps mu <- mu * target / sqrt(q_mu,A)."""
        mu = mu0
        for _ in range(12):
            s = math.sqrt(self.qmu_A(mu))
            if s <= 0:
                mu *= 4.0
                continue
            new = mu * target / s
            if abs(new - mu) <= self.rtol * abs(new):
                return new
            mu = new
        f = lambda m: math.sqrt(self.qmu_A(m)) - target  # noqa: E731
        lo, hi = mu / 2.0, mu * 2.0
        for _ in range(60):
            if f(lo) <= 0:
                break
            lo /= 2.0
        for _ in range(60):
            if f(hi) >= 0:
                break
            hi *= 2.0
        else:
            raise ValueError("no expected limit found: the signal has no sensitivity (all-zero template?)")
        return brentq(f, lo, hi, rtol=self.rtol)

    def expected_limits(self) -> list[float]:
        """Expected limits, -2 sigma .. +2 sigma."""
        sigma = self.sigma_A()
        out = []
        for n in BAND_SIGMAS:
            target = expected_sqrt_qmuA(n, self.level)
            out.append(self._solve_sqrt_qA(target, sigma * target))
        return out

    def observed_limit(self, median: float | None = None) -> float:
        """Observed limit (equal to the median expected one when the data is that Asimov set)."""
        if median is None:
            median = self.expected_limits()[2]
        if self.data_is_asimov:
            return median
        target = math.log(self.level)
        f = lambda m: self.log_cls(m) - target  # noqa: E731
        # Gaussian (Wald) guess: CLs = Phi(-(mu - mu^)/sigma) / Phi(mu^/sigma) = level
        sigma = median / math.sqrt(max(self.qmu_A(median), 1e-300))
        mh = max(self.mu_hat, 0.0)
        guess = mh + sigma * float(-ndtri(self.level * ndtr(mh / sigma)))
        m0, m1 = guess, guess * 1.01
        f0, f1 = f(m0), f(m1)
        for _ in range(12):  # secant steps on log CLs, nearly linear around the root
            if f1 == f0:
                break
            m2 = m1 - f1 * (m1 - m0) / (f1 - f0)
            if not (0.0 < m2 < 10.0 * guess + median):
                break
            if abs(m2 - m1) <= self.rtol * m2:
                return float(m2)
            m0, f0, m1, f1 = m1, f1, m2, f(m2)
        lo, hi = guess, guess  # fall back on bracketing + Brent
        while f(lo) <= 0:
            lo *= 0.7
            if lo < 1e-9 * max(median, 1e-12):
                return lo
        for _ in range(200):
            if f(hi) <= 0:
                break
            hi *= 1.4
        else:
            raise ValueError("no observed limit found below mu = %g" % hi)
        if lo == hi:
            lo = hi / 1.4
        return float(brentq(f, lo, hi, rtol=self.rtol, xtol=1e-12))

    def result(self) -> LimitResult:
        expected = self.expected_limits()
        observed = self.observed_limit(expected[2])
        return LimitResult(
            observed=float(observed),
            expected=[float(x) for x in expected],
            mu_hat=self.mu_hat,
            n_fits=self.n_fits,
        )


def upper_limit(model, data, *, level: float = 0.05, init=None) -> LimitResult:
    """Observed and expected CLs upper limits on the POI (fast equivalent of pyhf's ``upper_limit``)."""
    return AsymptoticLimits(model, data, level=level, init=init).result()


def scan_upper_limits(
    workspaces: Sequence[Mapping],
    *,
    data: Sequence[Sequence[float]] | None = None,
    level: float = 0.05,
) -> list[tuple[LimitResult, FastModel, np.ndarray]]:
    """Limits for a sequence of workspaces (e.g. the patches of a grid), warm-starting each point
    from the previous one's background-only fit. ``data`` defaults to each workspace's own data."""
    out = []
    prev: tuple[FastModel, np.ndarray] | None = None
    for i, spec in enumerate(workspaces):
        ws = pyhf.Workspace(dict(spec))
        fast = FastModel(ws.model())
        d = np.asarray(ws.data(fast.model) if data is None else data[i], dtype=float)
        init = None if prev is None else transfer_pars(prev[0], prev[1], fast)
        calc = AsymptoticLimits(fast, d, level=level, init=init)
        out.append((calc.result(), fast, d))
        prev = (fast, calc.bkg_pars)
    return out


__all__.append("scan_upper_limits")
