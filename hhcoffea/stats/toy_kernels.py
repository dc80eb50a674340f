"""Compiled toy fits for :meth:`hhcoffea.stats.likelihood.FastModel.fit_many`.

One numba loop over the datasets (toys) fits each with the projected Gauss-Newton iteration of
the batched numpy fitter (``FastModel._fit_many_numpy``), step for step: expected yields, the
Jacobian, the gradient, the staterror gammas eliminated bin by bin (Schur complement), the
reduced Hessian ``JK diag(W_eff) JK^T`` plus the interpolations' curvature, its Cholesky solve,
the backtracking line search and the same convergence tests. Only the order of floating-point
sums differs. Per toy and step this touches a few hundred numbers held in small work arrays
instead of ~40 passes over ``(toys, bins)`` arrays, ~4x less time at 10^4 toys.

:func:`pack_model` turns a :class:`FastModel` into the flat arrays the kernel reads;
:func:`fit_toys` runs the fits. Compiled with ``cache=True``: the first call on a machine
compiles (seconds), later processes load the cached machine code.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit
from numba.core.cpu import CPUTargetOptions

from .model_layout import YIELD_FLOOR

__all__ = ["KernelModel", "pack_model", "fit_toys"]

_TINY = YIELD_FLOOR
# Helpers run without numba's reference counting (_nrt=False: they allocate nothing): its atomic
# increments on every array argument and view cost ~30% of the kernel. Sums may be reassociated
# (vectorised); no flag that assumes finite values (bounds are +-inf for fixed parameters).
# _nrt is a private option: a numba without it compiles the helpers with reference counting
_NO_RT = {"cache": True, "fastmath": {"reassoc", "contract", "nsz", "arcp"},
          **({"_nrt": False} if hasattr(CPUTargetOptions, "_nrt") else {})}


class KernelModel(NamedTuple):
    """A FastModel as flat arrays (S rows of (sample, channel), B bins, P parameters, F factor and H
    histosys modifiers). A row is zero outside its channel's bins ``row_b0`` .. ``row_b1``."""

    nominal: np.ndarray  # (S, B)
    stat_index: np.ndarray  # (S, B) staterror gamma of each cell, -1 for none
    row_b0: np.ndarray  # (S,) first bin of the row's channel
    row_b1: np.ndarray  # (S,) one past its last bin
    fac_sample: np.ndarray  # (F,) row a scalar factor multiplies
    fac_par: np.ndarray  # (F,) its parameter
    fac_normsys: np.ndarray  # (F,) True: code4 normsys, False: the parameter itself (normfactor, lumi)
    fac_coef: np.ndarray  # (F, 6) code4 polynomial coefficients
    fac_lhi: np.ndarray  # (F,) log(hi)
    fac_llo: np.ndarray  # (F,) log(lo)
    hist_sample: np.ndarray  # (H,)
    hist_par: np.ndarray  # (H,)
    hist_b0: np.ndarray  # (H,) first bin of its channel
    hist_b1: np.ndarray  # (H,) one past its last bin
    hist_du: np.ndarray  # (H, B) up - nominal (zero outside its channel)
    hist_dd: np.ndarray  # (H, B) nominal - down
    kpos: np.ndarray  # (P,) row of a non-gamma parameter in JK, -1 for an eliminated gamma
    others: np.ndarray  # (K,) the non-gamma parameters
    gammas: np.ndarray  # (G,) eliminated staterror gammas (one bin each)
    gpos: np.ndarray  # (P,) index of an eliminated gamma in ``gammas``, -1 otherwise
    gamma_bin: np.ndarray  # (G,)
    inv_var: np.ndarray  # (P,) 1 / sigma^2 of the constraint, 0 without one
    inv_sigma: np.ndarray  # (P,)
    scale: np.ndarray  # (P,) constraint width (1 without one): the step-size measure


def pack_model(fast) -> KernelModel:
    """The arrays of ``fast`` (a :class:`FastModel` after ``_prepare_many``) the kernel reads."""
    S, B, P = fast.nominal.shape[0], fast.nbins, fast.npars
    F, H = len(fast._factor), len(fast._hist)
    fac_coef, fac_lhi, fac_llo = np.zeros((F, 6)), np.zeros(F), np.zeros(F)
    for i, (_, _, kind, hilo, coef) in enumerate(fast._factor):
        if kind == "normsys":
            fac_coef[i], fac_lhi[i], fac_llo[i] = coef, np.log(hilo[0]), np.log(hilo[1])
    hist_du, hist_dd = np.zeros((H, B)), np.zeros((H, B))
    for i, (_, _, sl, du, dd) in enumerate(fast._hist):
        hist_du[i, sl], hist_dd[i, sl] = du, dd
    kpos = np.full(P, -1, dtype=np.int64)
    kpos[fast._others] = np.arange(fast._others.size)
    gpos = np.full(P, -1, dtype=np.int64)
    gpos[fast._gammas] = np.arange(fast._gammas.size)
    ints = lambda v: np.asarray(v, dtype=np.int64).reshape(-1)  # noqa: E731
    return KernelModel(
        nominal=np.ascontiguousarray(fast.nominal, dtype=float),
        stat_index=np.ascontiguousarray(fast.stat_index, dtype=np.int64).reshape(S, B),
        row_b0=ints([sl.start for sl in fast.layout.row_bins]),
        row_b1=ints([sl.stop for sl in fast.layout.row_bins]),
        fac_sample=ints([m[0] for m in fast._factor]),
        fac_par=ints([m[1] for m in fast._factor]),
        fac_normsys=np.array([m[2] == "normsys" for m in fast._factor], dtype=np.bool_).reshape(-1),
        fac_coef=fac_coef,
        fac_lhi=fac_lhi,
        fac_llo=fac_llo,
        hist_sample=ints([m[0] for m in fast._hist]),
        hist_par=ints([m[1] for m in fast._hist]),
        hist_b0=ints([m[2].start for m in fast._hist]),
        hist_b1=ints([m[2].stop for m in fast._hist]),
        hist_du=hist_du,
        hist_dd=hist_dd,
        kpos=kpos,
        others=ints(fast._others),
        gammas=ints(fast._gammas),
        gpos=gpos,
        gamma_bin=ints(fast._gamma_bin),
        inv_var=np.asarray(fast._inv_var, dtype=float),
        inv_sigma=np.asarray(fast._inv_sigma, dtype=float),
        scale=np.asarray(fast.scale, dtype=float),
    )


@njit(**_NO_RT)
def _yields(x, m, AG, fs, fval, fder, lam):
    """Base yields times gammas ``AG`` (S, B), factors per row ``fs``, each factor's value and
    derivative, and the expected yields ``lam`` at parameters ``x``. Only the bins of each row's
    channel are written (``AG`` is zero elsewhere from its allocation)."""
    S, B = m.nominal.shape
    for s in range(S):
        for b in range(m.row_b0[s], m.row_b1[s]):
            AG[s, b] = m.nominal[s, b]
    for h in range(m.hist_par.size):  # code4p: linear outside |a| < 1, 6th-order polynomial inside
        a, s = x[m.hist_par[h]], m.hist_sample[h]
        a2 = a * a
        for b in range(m.hist_b0[h], m.hist_b1[h]):
            du, dd = m.hist_du[h, b], m.hist_dd[h, b]
            if a > 1.0:
                AG[s, b] += a * du
            elif a < -1.0:
                AG[s, b] += a * dd
            else:
                AG[s, b] += a * (0.5 * (du + dd)) + a2 * (a2 * (3.0 * a2 - 10.0) + 15.0) * (0.0625 * (du - dd))
    for s in range(S):
        for b in range(m.row_b0[s], m.row_b1[s]):
            p = m.stat_index[s, b]
            if p >= 0:
                AG[s, b] *= x[p]
    fs[:] = 1.0
    for i in range(m.fac_par.size):
        a = x[m.fac_par[i]]
        if m.fac_normsys[i]:  # code4: exponential outside |a| < 1, polynomial (Horner) inside
            if a >= 1.0:
                f = np.exp(a * m.fac_lhi[i])
                d = f * m.fac_lhi[i]
            elif a <= -1.0:
                f = np.exp(-a * m.fac_llo[i])
                d = -f * m.fac_llo[i]
            else:
                c = m.fac_coef[i]
                f = c[5] * a
                d = 6.0 * c[5]
                for j in range(4, -1, -1):
                    f = (f + c[j]) * a
                    d = d * a + (j + 1) * c[j]
                f += 1.0
        else:
            f, d = a, 1.0
        fval[i], fder[i] = f, d
        fs[m.fac_sample[i]] *= f
    lam[:] = 0.0
    for s in range(S):
        f = fs[s]
        for b in range(m.row_b0[s], m.row_b1[s]):
            lam[b] += f * AG[s, b]


@njit(**_NO_RT)
def _jacobian(x, m, AG, fs, fval, fder, JK, JG):
    """d lambda / d theta: rows ``JK`` (K, B) of the non-gamma parameters, and ``JG`` (G,) of each
    eliminated gamma in its own bin."""
    S, B = m.nominal.shape
    JK[:, :] = 0.0
    for i in range(m.fac_par.size):
        s, k = m.fac_sample[i], m.kpos[m.fac_par[i]]
        d = fder[i]
        for j in range(m.fac_par.size):  # the other factors of the sample (exact where one is 0)
            if j != i and m.fac_sample[j] == s:
                d *= fval[j]
        for b in range(m.row_b0[s], m.row_b1[s]):
            JK[k, b] += d * AG[s, b]
    for h in range(m.hist_par.size):
        a, s, k = x[m.hist_par[h]], m.hist_sample[h], m.kpos[m.hist_par[h]]
        a2 = a * a
        for b in range(m.hist_b0[h], m.hist_b1[h]):
            du, dd = m.hist_du[h, b], m.hist_dd[h, b]
            if a > 1.0:
                dd_a = du
            elif a < -1.0:
                dd_a = dd
            else:
                dd_a = 0.5 * (du + dd) + (a * (a2 * (18.0 * a2 - 40.0) + 30.0)) * (0.0625 * (du - dd))
            p = m.stat_index[s, b]
            JK[k, b] += fs[s] * (x[p] if p >= 0 else 1.0) * dd_a
    JG[:] = 0.0
    for s in range(S):
        for b in range(m.row_b0[s], m.row_b1[s]):
            p = m.stat_index[s, b]
            if p < 0:
                continue
            if m.gpos[p] >= 0:
                JG[m.gpos[p]] += fs[s] * AG[s, b]
            else:  # gammas sharing a bin stay in JK
                JK[m.kpos[p], b] += fs[s] * AG[s, b] / x[p]
    for g in range(m.gammas.size):
        JG[g] /= x[m.gammas[g]]


@njit(**_NO_RT)
def _nll(x, n, aux, lam, m):
    """NLL without the data-only constants, as ``FastModel._nll_many``."""
    out = 0.0
    for b in range(lam.size):
        lc = max(lam[b], _TINY)
        out += lc - n[b] * np.log(lc)
    c = 0.0
    for p in range(x.size):
        d = (x[p] - aux[p]) * m.inv_sigma[p]
        c += d * d
    return out + 0.5 * c


@njit(**_NO_RT)
def _solve_spd(H, g, out, L, A, rhs):
    """``out = H^-1 g`` by Cholesky; a matrix that is not positive definite by pivoted Gaussian
    elimination, and by its diagonal where singular (as ``likelihood._solve_spd_many``)."""
    K = g.size
    bad = False
    for j in range(K):  # lower triangle of L; its diagonal holds 1 / L_jj
        d = H[j, j]
        for k in range(j):
            d -= L[j, k] * L[j, k]
        if not d > 0:
            bad = True
            d = 1.0
        inv = 1.0 / np.sqrt(d)
        L[j, j] = inv
        for i in range(j + 1, K):
            v = H[i, j]
            for k in range(j):
                v -= L[i, k] * L[j, k]
            L[i, j] = v * inv
    if not bad:
        for i in range(K):
            v = g[i]
            for k in range(i):
                v -= L[i, k] * out[k]
            out[i] = v * L[i, i]
        for i in range(K - 1, -1, -1):
            v = out[i]
            for k in range(i + 1, K):
                v -= L[k, i] * out[k]
            out[i] = v * L[i, i]
        return
    for i in range(K):
        rhs[i] = g[i]
        for k in range(K):
            A[i, k] = H[i, k]
    for j in range(K):
        piv = j
        for i in range(j + 1, K):
            if abs(A[i, j]) > abs(A[piv, j]):
                piv = i
        if A[piv, j] == 0.0:  # singular: the diagonal alone
            for i in range(K):
                hd = abs(H[i, i])
                out[i] = g[i] / hd if hd > 0 else 0.0
            return
        if piv != j:
            for k in range(K):
                A[j, k], A[piv, k] = A[piv, k], A[j, k]
            rhs[j], rhs[piv] = rhs[piv], rhs[j]
        for i in range(j + 1, K):
            f = A[i, j] / A[j, j]
            for k in range(j, K):
                A[i, k] -= f * A[j, k]
            rhs[i] -= f * rhs[j]
    for i in range(K - 1, -1, -1):
        v = rhs[i]
        for k in range(i + 1, K):
            v -= A[i, k] * out[k]
        out[i] = v / A[i, i]


@njit(**_NO_RT)
def _newton_step(x, n, aux, free, lo, hi, m, lam, AG, fs, fval, JK, JG, step, gu, use, w):
    """Gauss-Newton step of one dataset with the gammas eliminated (``FastModel._newton_step_many``);
    fills ``step``, the projected gradient ``gu`` and the moving parameters ``use``."""
    r, W, v, g, gK, dK, H, L, D, JWu, A, rhs = w
    B, K, G, P = lam.size, m.others.size, m.gammas.size, x.size
    for b in range(B):
        inv = 1.0 / max(lam[b], _TINY)
        r[b] = 1.0 - n[b] * inv
        W[b] = max(n[b], 0.5) * (inv * inv)  # kept positive in empty bins (else a singular step)
    for k in range(K):
        acc = 0.0
        for b in range(B):
            acc += JK[k, b] * r[b]
        g[m.others[k]] = acc
    for j in range(G):
        g[m.gammas[j]] = JG[j] * r[m.gamma_bin[j]]
    for p in range(P):
        gp = g[p] + (x[p] - aux[p]) * m.inv_var[p]
        u = free[p] and not ((x[p] <= lo[p] and gp > 0) or (x[p] >= hi[p] and gp < 0))
        g[p], use[p], gu[p] = gp, u, gp if u else 0.0
    v[:] = 0.0
    for j in range(G):  # each gamma couples to its own bin only: reweight that bin
        b, p = m.gamma_bin[j], m.gammas[j]
        jw = JG[j] * W[b]
        if use[p]:
            D[j] = JG[j] * jw + m.inv_var[p]
            JWu[j] = jw / D[j]
        else:
            D[j], JWu[j] = 1.0, 0.0
        W[b] -= JWu[j] * jw
        v[b] = JWu[j] * gu[p]
    for k in range(K):
        p = m.others[k]
        if use[p]:
            acc = 0.0
            for b in range(B):
                acc += JK[k, b] * v[b]
            gK[k] = gu[p] - acc
        else:
            gK[k] = 0.0
    for k in range(K):
        uk = use[m.others[k]]
        for j in range(k + 1):
            acc = 0.0
            if uk and use[m.others[j]]:
                for b in range(B):
                    acc += JK[k, b] * W[b] * JK[j, b]
            H[k, j] = acc
            H[j, k] = acc
        H[k, k] = H[k, k] * (1.0 + 1e-9) + m.inv_var[m.others[k]] if uk else 1.0
    # second-derivative term of the exact Hessian where it adds curvature (Gauss-Newton alone
    # oscillates on the polynomial part of the interpolations)
    for h in range(m.hist_par.size):
        a, s, k = x[m.hist_par[h]], m.hist_sample[h], m.kpos[m.hist_par[h]]
        if abs(a) > 1.0 or not use[m.hist_par[h]]:
            continue
        a2 = a * a
        acc = 0.0
        for b in range(m.hist_b0[h], m.hist_b1[h]):
            p = m.stat_index[s, b]
            d2 = (a2 * (90.0 * a2 - 120.0) + 30.0) * (0.0625 * (m.hist_du[h, b] - m.hist_dd[h, b]))
            acc += r[b] * fs[s] * (x[p] if p >= 0 else 1.0) * d2
        H[k, k] += max(acc, 0.0)
    for i in range(m.fac_par.size):
        p = m.fac_par[i]
        if not m.fac_normsys[i] or not use[p]:
            continue
        a, s, c = x[p], m.fac_sample[i], m.fac_coef[i]
        if a >= 1.0:
            inner = np.exp(a * m.fac_lhi[i]) * m.fac_lhi[i] ** 2
        elif a <= -1.0:
            inner = np.exp(-a * m.fac_llo[i]) * m.fac_llo[i] ** 2
        else:
            inner = (((30.0 * c[5] * a + 20.0 * c[4]) * a + 12.0 * c[3]) * a + 6.0 * c[2]) * a + 2.0 * c[1]
        rbase = 0.0
        for b in range(m.row_b0[s], m.row_b1[s]):
            rbase += AG[s, b] * r[b]
        others = fs[s] / (fval[i] if fval[i] != 0 else 1.0)
        H[m.kpos[p], m.kpos[p]] += max(rbase * others * inner, 0.0)
    _solve_spd(H, gK, dK, L, A, rhs)
    for k in range(K):
        p = m.others[k]
        step[p] = -dK[k] if use[p] else 0.0
    for j in range(G):
        p, b = m.gammas[j], m.gamma_bin[j]
        if use[p]:
            jd = 0.0
            for k in range(K):
                jd += step[m.others[k]] * JK[k, b]
            step[p] = -(gu[p] / D[j]) - JWu[j] * jd
        else:
            step[p] = 0.0


@njit(cache=True)
def fit_toys(m, x, n, aux, free, lo, hi, max_iter, ftol):
    """Fit every row of ``x`` (T, P) in place to the data ``n`` (T, B) and auxiliary data ``aux``
    (T, P, zero without a constraint), ``free`` parameters within ``lo`` .. ``hi``.

    Returns each fit's NLL without the data-only constants (T,) and whether it converged (T,);
    unconverged fits keep their best point (``fit_many`` refits them one by one)."""
    T, P = x.shape
    S, B = m.nominal.shape
    K, G, F = m.others.size, m.gammas.size, m.fac_par.size
    f_out = np.empty(T)
    ok = np.zeros(T, dtype=np.bool_)
    # evaluations at the current point and at the trial point: AG, fs, factor values, derivatives, lam
    # (AG zero-filled: a row's cells outside its channel are never written)
    cur = (np.zeros((S, B)), np.empty(S), np.empty(F), np.empty(F), np.empty(B))
    trial = (np.zeros((S, B)), np.empty(S), np.empty(F), np.empty(F), np.empty(B))
    w = (np.empty(B), np.empty(B), np.empty(B), np.empty(P), np.empty(K), np.empty(K),
         np.empty((K, K)), np.empty((K, K)), np.empty(G), np.empty(G), np.empty((K, K)), np.empty(K))
    _fit_rows(m, x, n, aux, free, lo, hi, max_iter, ftol, f_out, ok, cur, trial, (np.empty((K, B)), np.empty(G)), w,
              (np.empty(P), np.empty(P), np.empty(P, dtype=np.bool_), np.empty(P)))
    return f_out, ok


@njit(**_NO_RT)
def _fit_rows(m, x, n, aux, free, lo, hi, max_iter, ftol, f_out, ok, cur, trial, jac, w, vec):
    """:func:`fit_toys`'s loop over the rows, on preallocated work arrays."""
    T, P = x.shape
    AGc, fsc, fvc, fdc, lamc = cur
    AGt, fst, fvt, fdt, lamt = trial
    JKc, JGc = jac
    step, gu, use, xn = vec
    for t in range(T):
        xt, nt, at = x[t], n[t], aux[t]
        _yields(xt, m, AGc, fsc, fvc, fdc, lamc)
        _jacobian(xt, m, AGc, fsc, fvc, fdc, JKc, JGc)
        f = _nll(xt, nt, at, lamc, m)
        for _ in range(max_iter):
            _newton_step(xt, nt, at, free, lo, hi, m, lamc, AGc, fsc, fvc, JKc, JGc, step, gu, use, w)
            # Newton decrement: the predicted gain of a full step; below ftol the fit has converged
            decrement, inside, n_use = 0.0, True, 0
            for p in range(P):
                decrement -= gu[p] * step[p]
                xp = xt[p] + step[p]
                if use[p]:
                    n_use += 1
                    inside = inside and lo[p] <= xp <= hi[p]
            if inside and decrement < ftol:
                ok[t] = True
                break
            for p in range(P):
                xn[p] = min(max(xt[p] + step[p], lo[p]), hi[p])  # step is 0 where a parameter does not move
            _yields(xn, m, AGt, fst, fvt, fdt, lamt)
            fn = _nll(xn, nt, at, lamt, m)
            slack = 1e-12 * (1.0 + abs(f))  # rounding of the NLL itself
            tt = 1.0
            for _ls in range(30):  # backtracking
                gain = 0.0
                for p in range(P):
                    gain += gu[p] * (xn[p] - xt[p])
                if fn <= f + 1e-4 * gain + slack or not tt > 1e-8:
                    break
                tt *= 0.5
                for p in range(P):
                    xn[p] = min(max(xt[p] + tt * step[p], lo[p]), hi[p])
                _yields(xn, m, AGt, fst, fvt, fdt, lamt)
                fn = _nll(xn, nt, at, lamt, m)
            moved = 0.0
            for p in range(P):
                moved = max(moved, abs(xn[p] - xt[p]) / m.scale[p])
            # converged: a full step gains < ftol, or the predicted gain is < ftol (flat directions
            # where Gauss-Newton steps wander without changing the NLL)
            conv = ((f - fn < ftol) and (moved < 1e-5 or tt == 1.0)) or decrement < 10 * ftol or n_use == 0
            if fn <= f:
                for p in range(P):
                    xt[p] = xn[p]
                f = fn
                AGc, AGt, fsc, fst, fvc, fvt, fdc, fdt, lamc, lamt = AGt, AGc, fst, fsc, fvt, fvc, fdt, fdc, lamt, lamc
                if not (conv or tt <= 1e-8):
                    _jacobian(xt, m, AGc, fsc, fvc, fdc, JKc, JGc)
            if conv or tt <= 1e-8:
                ok[t] = conv
                break
        f_out[t] = f
