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

**Toys** (:class:`ToyLimits`, ``upper_limit(..., calculator="toys")``): the same ``q~_mu``, with
its distributions from pseudo-experiments instead of the asymptotic formulae (what matters when
bins expect a handful of events). Background-only toys are generated at the background-only fit
to the data (``mu = 0``, nuisance parameters profiled), signal-plus-background toys at the
conditional fit at the tested ``mu`` (the LHC convention; auxiliary data are drawn too).
``CLs = P(q >= q_obs | s+b) / P(q >= q_obs | b)``; the expected band is the quantiles
``Phi(-n)`` of the CLs of the background-only toys (pyhf's convention). All toys of one ``mu`` are
fitted at once (:meth:`FastModel.fit_many`); the toys of different ``mu`` share their random
numbers (Poisson counts by inverse CDF), so ``CLs(mu)`` is smooth enough for a root finder and a
seed gives the same limits every time.

Every fit's convergence is recorded: a fit that fails is retried from the model's initial values,
and a limit that still rests on a failed fit has ``converged = False``.

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
from scipy.special import log_ndtr, ndtr, ndtri, pdtr

from .likelihood import FastModel

__all__ = [
    "LimitResult",
    "AsymptoticLimits",
    "ToyLimits",
    "upper_limit",
    "scan_upper_limits",
    "poisson_quantile",
    "CALCULATORS",
    "make_calculator",
    "expected_sqrt_qmuA",
    "transfer_pars",
    "BAND_SIGMAS",
]

#: the CLs calculators ``upper_limit`` accepts
CALCULATORS = ("asymptotic", "toys")

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
    #: False when a fit the limit rests on did not converge (after a retry from another start)
    converged: bool = True
    failed_fits: int = 0
    calculator: str = "asymptotic"
    n_toys: int | None = None
    seed: int | None = None

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
        self.failed_fits = 0
        self.data = _Branch(np.asarray(data, dtype=float))
        start = self.fast.init.copy() if init is None else np.asarray(init, dtype=float)
        free = self._fit(self.data.data, start)
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
    def _fit(self, data: np.ndarray, start: np.ndarray, mu: float | None = None):
        """One fit; if it fails, again from the model's initial values; failures are counted."""
        fixed = None if mu is None else {self.poi: mu}
        res = self.fast.fit(data, init=start, fixed_values=fixed)
        self.n_fits += 1
        if not res.success:
            retry = self.fast.fit(data, init=self.fast.init, fixed_values=fixed)
            self.n_fits += 1
            if retry.success or retry.nll < res.nll:
                res = retry
            if not res.success:
                self.failed_fits += 1
        return res

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
        res = self._fit(branch.data, start, mu)
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
            raise ValueError(f"no observed limit found below mu = {hi:g}")
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
            converged=self.failed_fits == 0,
            failed_fits=self.failed_fits,
        )


def poisson_quantile(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Smallest ``k`` with ``P(N <= k | lam) >= u``: Poisson counts by inverse CDF (vectorised).

    Toys at nearby rates drawn from the same ``u`` differ only where they must, which keeps
    ``CLs(mu)`` from toys a smooth function of ``mu``. Equal to ``scipy.stats.poisson.ppf``, ~10x
    faster; with one rate per column of ``u`` (toys of one expectation, ``lam`` of shape ``(B,)``)
    by a table of the CDF per column, ~100x faster.
    """
    u = np.asarray(u, dtype=float)
    lam = np.asarray(lam, dtype=float)
    if u.ndim == 2 and lam.ndim == 1 and lam.shape[0] == u.shape[1] and u.shape[0] > 0:
        return _poisson_quantile_columns(u, lam)
    return _poisson_quantile_any(u, np.broadcast_to(lam, u.shape))


def _poisson_quantile_columns(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """:func:`poisson_quantile` with rate ``lam[b]`` for column ``b``: the CDF between the quantiles
    of the column's smallest and largest ``u`` (every count of the column lies between them), then
    a binary search. The running maximum makes it exact even if ``pdtr`` were not monotone in the
    last bit (the smallest ``k`` with ``cdf >= u`` is the smallest with ``max(cdf[:k+1]) >= u``)."""
    kmin = _poisson_quantile_any(u.min(axis=0), lam)
    kmax = _poisson_quantile_any(u.max(axis=0), lam)
    out = np.empty(u.shape)
    for b in range(u.shape[1]):  # one small table per bin, not per toy
        cdf = np.maximum.accumulate(pdtr(np.arange(kmin[b], kmax[b] + 1.0), lam[b]))
        out[:, b] = kmin[b] + np.searchsorted(cdf, u[:, b], side="left")
    return out


def _poisson_quantile_any(u: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """:func:`poisson_quantile` for any rates of ``u``'s shape: Cornish-Fisher start, then +-1 steps."""
    z = ndtri(np.maximum(u, 1e-300))  # u = 0 (possible from rng.random) has quantile 0, not NaN
    k = np.maximum(np.floor(lam + np.sqrt(lam) * z + (z * z - 1.0) / 6.0 + 0.5), 0.0).ravel()  # Cornish-Fisher
    uf, lf = u.ravel(), lam.ravel()
    idx = np.flatnonzero(pdtr(k, lf) < uf)
    while idx.size:
        k[idx] += 1.0
        idx = idx[pdtr(k[idx], lf[idx]) < uf[idx]]
    idx = np.flatnonzero(k > 0)
    idx = idx[pdtr(k[idx] - 1.0, lf[idx]) >= uf[idx]]
    while idx.size:
        k[idx] -= 1.0
        idx = idx[k[idx] > 0]
        idx = idx[pdtr(k[idx] - 1.0, lf[idx]) >= uf[idx]]
    return k.reshape(u.shape)


class ToyLimits:
    """CLs limits from pseudo-experiments (see the module docstring), all toys of a ``mu`` fitted at once.

    Args:
        model, data, level, init: as :class:`AsymptoticLimits` (whose limits start the search).
        n_toys: toys per hypothesis (background only, and signal + background at each tested ``mu``).
        seed: random seed; the same seed gives the same limits.
        rtol: the search stops when every limit moves by less than this (relative) between rounds
            or lies this close to an evaluated point; 1% is below the toys' own statistical
            precision (a few per cent at 10^4 toys).
    """

    def __init__(
        self, model, data, *, n_toys: int = 10000, seed: int = 0, level: float = 0.05, init=None, rtol: float = 1e-2
    ) -> None:
        self.asymptotic = AsymptoticLimits(model, data, level=level, init=init)
        fast = self.fast = self.asymptotic.fast
        self.level, self.rtol, self.poi = level, rtol, fast.poi_index
        self.n_toys, self.seed = int(n_toys), int(seed)
        if self.n_toys < 10:
            raise ValueError(f"n_toys must be at least 10, got {n_toys}")
        rng = np.random.default_rng(self.seed)
        shape_main, shape_aux = (self.n_toys, fast.nbins), (self.n_toys, fast.constr_index.size)
        self.failed_toy_fits = 0
        self.n_batched_fits = 0
        self.n_b, self.aux_b = self._generate(self.asymptotic.bkg_pars, rng.random(shape_main), rng.standard_normal(shape_aux))
        self.free_b = self._fit_many(self.n_b, self.aux_b, self.asymptotic.bkg_pars)
        # the signal + background toys of every mu are drawn from these numbers
        self._u_sb, self._z_sb = rng.random(shape_main), rng.standard_normal(shape_aux)
        self._cache: dict[float, dict] = {}

    @property
    def bkg_pars(self) -> np.ndarray:
        """Background-only fit to the data (warm start for the next point of a scan)."""
        return self.asymptotic.bkg_pars

    def _generate(self, pars: np.ndarray, u: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lam = self.fast.expected_actualdata(pars)
        aux = pars[self.fast.constr_index] + self.fast.constr_sigma * z
        return poisson_quantile(u, lam), aux

    def _fit_many(self, n, aux, init, mu: float | None = None):
        # a fit stopping at a predicted NLL gain < 1e-5 leaves q~ within 2e-5 of its value: under the
        # tie tolerance below, and near a CLs threshold it moves ~0.02 of 10^4 toys (far below sqrt(N))
        res = self.fast.fit_many(n, aux, init, fixed_values=None if mu is None else {self.poi: mu}, ftol=1e-5)
        self.n_batched_fits += 1
        self.failed_toy_fits += int(np.sum(~res.success))
        return res

    def _q_tilde(self, n, aux, free, mu: float, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """q~_mu of every toy (0 where mu^ > mu, else 2 (NLL(mu) - NLL(mu^)); mu^ >= 0 by its bound)
        and the conditional fits' parameters (``start`` where none was needed)."""
        q = np.zeros(n.shape[0])
        pars = start.copy()
        need = free.pars[:, self.poi] <= mu
        if need.any():
            cond = self._fit_many(n[need], aux[need], start[need], mu)
            q[need] = np.maximum(2.0 * (cond.nll - free.nll[need]), 0.0)
            pars[need] = cond.pars
        return q, pars

    def _nearest(self, mu: float, key: str) -> np.ndarray | None:
        """Start values for the toys' fits at ``mu``: the fits of the two nearest evaluated ``mu``
        extrapolated linearly (fits at nearby mu differ smoothly), or the nearest one's."""
        if not self._cache:
            return None
        near = sorted(self._cache, key=lambda x: abs(x - mu))[:2]
        p1 = self._cache[near[0]][key]
        if len(near) < 2:
            return p1.copy()
        p2 = self._cache[near[1]][key]
        t = (mu - near[0]) / (near[1] - near[0])
        lo, hi = self.fast.bounds[:, 0], self.fast.bounds[:, 1]
        return np.clip(p1 + t * (p2 - p1), lo, hi)

    def evaluate(self, mu: float) -> dict:
        """Toy CLs at ``mu``: ``{"observed": CLs, "expected": [5 CLs, band n = 2 .. -2], "q_obs": ...}``."""
        mu = float(mu)
        if mu in self._cache:
            return self._cache[mu]
        asym = self.asymptotic
        gen = asym._conditional(asym.data, mu)[0]
        q_obs = asym.qmu_tilde(mu)
        n_sb, aux_sb = self._generate(gen, self._u_sb, self._z_sb)
        warm = self._nearest(mu, "free_sb")
        start = np.broadcast_to(gen, n_sb.shape[:1] + gen.shape).copy() if warm is None else warm.copy()
        free_sb = self._fit_many(n_sb, aux_sb, start)
        warm_c = self._nearest(mu, "cond_sb")
        start_sb = free_sb.pars.copy() if warm_c is None else warm_c
        start_sb[:, self.poi] = mu
        q_sb, cond_sb = self._q_tilde(n_sb, aux_sb, free_sb, mu, start_sb)
        start_b = self.free_b.pars.copy()
        warm_b = self._nearest(mu, "cond_b")
        if warm_b is not None:
            start_b = warm_b.copy()
        start_b[:, self.poi] = mu
        q_b, cond_b = self._q_tilde(self.n_b, self.aux_b, self.free_b, mu, start_b)
        qs_sb, qs_b = np.sort(q_sb), np.sort(q_b)
        N = float(self.n_toys)

        def tail(sorted_q: np.ndarray, x):
            # fits of equal toys (discrete counts) agree to ~2e-5 (the fits' tolerance), not exactly:
            # count those as equal
            x = np.asarray(x, dtype=float)
            return (sorted_q.size - np.searchsorted(sorted_q, x - 1e-4 * (1.0 + x), side="left")) / N

        cls_obs = float(tail(qs_sb, q_obs) / max(tail(qs_b, q_obs), 1.0 / N))
        cls_b = tail(qs_sb, q_b) / tail(qs_b, q_b)
        expected = np.quantile(cls_b, [float(ndtr(-n)) for n in BAND_SIGMAS], method="inverted_cdf")
        out = {
            "observed": cls_obs,
            "expected": [float(x) for x in expected],
            "q_obs": q_obs,
            "free_sb": free_sb.pars,
            "cond_b": cond_b,
            "cond_sb": cond_sb,
        }
        self._cache[mu] = out
        return out

    def _values(self, mu: float) -> np.ndarray:
        e = self.evaluate(mu)
        floor = 0.1 / self.n_toys
        return np.log(np.maximum([e["observed"], *e["expected"]], floor)) - math.log(self.level)

    def limits(self) -> tuple[float, list[float]]:
        """Observed and expected (-2 .. +2 sigma) limits: roots of log CLs(mu) = log(level).

        Every evaluated ``mu`` gives all six curves. They start at the asymptotic limits; each
        root is the quadratic through the bracketing points and a neighbour, accepted when it
        agrees with the linear interpolation or lies next to an evaluated point (within ``rtol``),
        else evaluated there next round.
        """
        a = self.asymptotic.result()
        guesses = [a.observed, *a.expected]
        n_targets = len(guesses)
        for mu in sorted(guesses):
            if all(abs(mu - m) > self.rtol * mu for m in self._cache):
                self._values(mu)
        roots: list[float | None] = [None] * n_targets
        for _ in range(40):
            proposals = []
            mus = np.array(sorted(self._cache))
            vals = np.array([self._values(m) for m in mus])
            for j in range(n_targets):
                f = vals[:, j]
                cross = np.flatnonzero((f[:-1] > 0) & (f[1:] <= 0))
                if cross.size == 0:
                    roots[j] = None
                    above = bool(np.all(f > 0))  # the root lies beyond the largest mu, else below the smallest
                    a, b = (-1, -2) if above else (0, 1)
                    slope = (f[a] - f[b]) / (mus[a] - mus[b]) if mus.size > 1 else 0.0
                    if slope < 0:  # secant extrapolation from the two outermost points
                        r_ext = float(mus[a] - f[a] / slope)
                        if abs(r_ext - mus[a]) <= self.rtol * r_ext:
                            roots[j] = r_ext  # as accurate as an interpolation this close to a point
                            continue
                        # aim a little past it, so the next round brackets the root closely
                        proposals.append(r_ext * (1.0 + 2.0 * self.rtol) if above else r_ext * (1.0 - 2.0 * self.rtol))
                    else:
                        proposals.append(mus[-1] * 1.5 if above else mus[0] / 1.5)
                    continue
                i = int(cross[0])
                lo, hi = mus[i], mus[i + 1]
                r_lin = float(lo + f[i] * (hi - lo) / (f[i] - f[i + 1]))
                r = r_lin
                third = [k for k in (i - 1, i + 2) if 0 <= k < mus.size]
                if third:
                    k = min(third, key=lambda k: abs(mus[k] - 0.5 * (lo + hi)))
                    idx = [i, i + 1, k]
                    c = np.polyfit(mus[idx], f[idx], 2)
                    inside = [z.real for z in np.roots(c) if abs(z.imag) < 1e-12 and lo <= z.real <= hi]
                    if inside:
                        r = float(inside[0])
                roots[j] = r
                pinned = np.min(np.abs(mus - r)) <= self.rtol * r
                if not (pinned or abs(r - r_lin) <= self.rtol * r):
                    proposals.append(r)
            if not proposals:
                break
            for mu in sorted(proposals):  # one evaluation serves all curves: skip near-duplicates
                if all(abs(mu - m) > self.rtol * mu for m in self._cache):
                    self._values(mu)
        if any(r is None for r in roots):
            raise ValueError("toy CLs limit not bracketed: the signal has no sensitivity")
        return roots[0], roots[1:]

    def result(self) -> LimitResult:
        observed, expected = self.limits()
        asym = self.asymptotic
        failed = asym.failed_fits + self.failed_toy_fits
        return LimitResult(
            observed=float(observed),
            expected=[float(x) for x in expected],
            mu_hat=asym.mu_hat,
            n_fits=asym.n_fits + self.n_batched_fits * self.n_toys,
            converged=asym.failed_fits == 0 and self.failed_toy_fits <= 1e-3 * self.n_toys * max(self.n_batched_fits, 1),
            failed_fits=failed,
            calculator="toys",
            n_toys=self.n_toys,
            seed=self.seed,
        )


def upper_limit(
    model,
    data,
    *,
    level: float = 0.05,
    init=None,
    calculator: str = "asymptotic",
    n_toys: int = 10000,
    seed: int = 0,
) -> LimitResult:
    """Observed and expected CLs upper limits on the POI (fast equivalent of pyhf's ``upper_limit``).

    Args:
        calculator: ``"asymptotic"`` (q~_mu asymptotic formulae) or ``"toys"`` (:class:`ToyLimits`).
        n_toys, seed: toys per hypothesis and random seed (``calculator="toys"`` only).
    """
    return make_calculator(model, data, level=level, init=init, calculator=calculator, n_toys=n_toys, seed=seed).result()


def make_calculator(model, data, *, level=0.05, init=None, calculator="asymptotic", n_toys=10000, seed=0):
    """An :class:`AsymptoticLimits` or :class:`ToyLimits` (both have ``result()`` and ``bkg_pars``)."""
    if calculator == "asymptotic":
        return AsymptoticLimits(model, data, level=level, init=init)
    if calculator == "toys":
        return ToyLimits(model, data, level=level, init=init, n_toys=n_toys, seed=seed)
    raise ValueError(f"calculator must be one of {CALCULATORS}, got {calculator!r}")


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

