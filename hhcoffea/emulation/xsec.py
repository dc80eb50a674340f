"""Densities and cross sections of the emulated processes (13 TeV).

``xsec_fb`` in a sample's sidecar is sigma x BR into the generated final state at 13 TeV; a
processor weight is genWeight (always 1) x xsec_fb x luminosity / n_generated
(:func:`sample_xsec_fb`).

Non-resonant: NNLO normalisation, emulated shapes
-------------------------------------------------
A non-resonant sample at kappa_lambda is normalised to the NNLO cross section of PHYSICS.md
("Calibration numbers"), sigma_NNLO(kappa) = 70.3874 - 50.4111 kappa + 11.0595 kappa^2 fb
(``constants.ggf_hh_xsec_13tev``), times BR(hh -> 4b) = 0.5824^2. The emulation gives only the
shape and the acceptance (which events, with which kinematics).

The shape: dsigma/dm_hh ~ (2 m_hh/s) dL_gg/dtau(tau) * s_hat beta |A|^2 with the LO heavy-top
amplitude of PHYSICS.md: A = kappa C_tri F_tri + F_box, C_tri = 3 m_h^2/(s-m_h^2), F_tri = 2/3,
F_box = -2/3. The m_hh of an event is drawn by numerical inverse-CDF sampling on a fine grid
(:func:`sample_mhh`). One kappa-independent factor normalises the LO integral to
sigma_SM(13 TeV) = 31.05 fb, so the emulated :func:`nonresonant_xsec` = 57.73 - 34.97 kappa +
8.290 kappa^2 fb is exactly quadratic and :func:`mhh_density` is, bin by bin, a quadratic in kappa.
With the effective gluon density below, the SM m_hh peaks at ~435 GeV (median ~580 GeV: the
heavy-top amplitude has a harder tail than the full theory); the emulated sigma(kappa) has its
minimum at ``NONRESONANT_XSEC_MINIMUM`` = 2.11 (NNLO: 2.28).

Morphing. The emulated and the NNLO kappa dependence differ (the ratio
:func:`nonresonant_k_factor` runs from 1.22 at kappa = 0 through 1 at kappa = 1 to 0.61 near
kappa = 2.5 and 1.18 at kappa = 7). Cross sections still morph exactly with the plain Lagrange
coefficients c_i(kappa) of three basis points, because sigma_NNLO is quadratic. Templates of
NNLO-normalised samples morph exactly with d_i(kappa) = c_i(kappa) K(kappa) / K(kappa_i)
(:func:`nonresonant_morphing_coefficients`). These divide out each basis sample's K, morph the
emulated shapes (exactly quadratic) and multiply by K at the target. The plain c_i do not give
the shape: no family of LO heavy-top shapes normalised to sigma_NNLO is quadratic in kappa bin by
bin.

Other processes
---------------
* resonant: ``calibration.RESONANT_XSEC_TABLE``, interpolated linearly in log(sigma)
  (extrapolated with the edge slopes) by :func:`resonant_xsec`.
* qcd: ``QCD_XSEC_FB`` = 6.03e3 fb / measured four-tag efficiency (2.10%) = 2.88e5 fb: the cross
  section of the emulation's generated phase space (b quarks pT > 30, |eta| < 2.7). The seeds'
  efficiencies after the selection (``constants.REFERENCE_QCD_SELECTION_EFFICIENCY``) divide by
  their own generated sample, whose cuts and cross section they do not give, so an efficiency per
  generated event here is not theirs: compare yields (``benchmarks/fidelity.py --background``).
  The yields they give agree: 6.1e3 fb after four-tag, 2.2-2.3e3 / 3.0e2 fb in the m_hh windows
  (2.57e3 / 3.32e2). Equal selection yields would need a seeds' sample of ~1.0e6 fb (~5x this).
* ttbar: 832 pb x BR(all-hadronic) 0.457 = 3.80e5 fb, not calibrated; four-tag efficiency 5.2e-4
  (MV2c10-70) and 2.3e-3 (DL1r-77), i.e. 3% and 9% of QCD after the four-tag cut, below the
  seeds' "less than 10%" (seed 003 sec. II.B), who leave it out of their likelihood.
"""

from __future__ import annotations

import functools

import numpy as np

from .. import constants as C
from .calibration import QCD_FOUR_TAG_EFFICIENCY, RESONANT_XSEC_TABLE

__all__ = [
    "MHH_GRID_MAX",
    "NONRESONANT_XSEC_MINIMUM",
    "QCD_XSEC_FB",
    "SQRT_S",
    "TTBAR_XSEC_FB",
    "mhh_density",
    "nonresonant_k_factor",
    "nonresonant_morphing_coefficients",
    "nonresonant_xsec",
    "nonresonant_xsec_coefficients",
    "nonresonant_xsec_nnlo",
    "resonant_xsec",
    "XSEC_SOURCE",
    "sample_mhh",
    "sample_xsec_fb",
]

SQRT_S = 13000.0  # GeV; all samples are 13 TeV kinematics (PHYSICS.md, Calibration)

# Emulation tuning, not PHYSICS.md: the nonresonant m_hh effective gluon density
# x g(x) = x^-delta (1 - x)^eta (normalisation irrelevant). Steeper than a real gluon at large x on
# purpose: it stands in for the fall-off of the full-top-mass box that the heavy-top amplitude
# lacks, so that the SM m_hh peaks at ~430 GeV and sigma(k=5)/sigma(k=1) = 2.9 (NNLO: 3.05), with
# the minimum of sigma(k) at k = 2.11.
GLUON_DELTA, GLUON_ETA = 0.8, 15.0
MHH_GRID_MAX = 4000.0  # GeV, upper end of the inverse-CDF grid
MHH_GRID_POINTS = 20001

#: kappa_lambda at the minimum of nonresonant_xsec: -c1 / (2 c2) of the emulated LO integrals
#: (c0, c1, c2) = (57.73, -34.97, 8.290) fb; the NNLO parametrisation has it at 2.28
NONRESONANT_XSEC_MINIMUM = 2.109

# QCD pp -> bbbb after the generator-level cut: 6.03e3 fb after the four-tag cut (PHYSICS.md,
# constants.QCD_4B_XSEC_AFTER_FOUR_TAG) / measured four-tag efficiency
QCD_XSEC_FB = C.QCD_4B_XSEC_AFTER_FOUR_TAG / QCD_FOUR_TAG_EFFICIENCY  # 2.875e5 fb
# all-hadronic ttbar: not in PHYSICS.md and not calibrated to the four-tag table (four-tag
# efficiency 5.2e-4 at MV2c10-70, 2.3e-3 at DL1r-77: 3% and 9% of QCD, below the seeds' bound
# constants.REFERENCE_TTBAR_FRACTION_MAX); an emulation input
TTBAR_XSEC_PB = 832.0  # 13 TeV NNLO+NNLL
TTBAR_BR_ALL_HADRONIC = 0.457
TTBAR_XSEC_FB = TTBAR_XSEC_PB * 1e3 * TTBAR_BR_ALL_HADRONIC


# --- nonresonant m_hh density and cross section ------------------------------------------------
@functools.cache
def _mhh_components():
    """m_hh grid and the three kappa-basis densities dsigma/dm (BB, BT, TT), unnormalised."""
    m = np.linspace(2 * C.HIGGS_MASS, MHH_GRID_MAX, MHH_GRID_POINTS)
    shat = m * m
    tau = shat / SQRT_S**2
    # dL/dtau = tau^(-1-delta) (-ln tau) int_0^1 (1 - tau^v)^eta (1 - tau^(1-v))^eta dv
    v = (np.arange(128) + 0.5) / 128.0
    log_tau = np.log(tau)[:, None]
    integrand = (1.0 - np.exp(v * log_tau)) ** GLUON_ETA * (1.0 - np.exp((1.0 - v) * log_tau)) ** GLUON_ETA
    lumi = tau ** (-1.0 - GLUON_DELTA) * (-np.log(tau)) * integrand.mean(axis=1)
    beta = np.sqrt(np.clip(1.0 - 4 * C.HIGGS_MASS**2 / shat, 0.0, None))
    f_tri, f_box = 2.0 / 3.0, -2.0 / 3.0
    tri = 3 * C.HIGGS_MASS**2 / (shat - C.HIGGS_MASS**2) * f_tri
    box = np.full_like(m, f_box)
    common = 2 * m / SQRT_S**2 * lumi * shat * beta
    return m, common * box * box, common * box * tri, common * tri * tri


def _trapezoid_cumulative(y, x):
    out = np.zeros_like(y)
    out[1:] = np.cumsum(0.5 * (y[1:] + y[:-1]) * np.diff(x))
    return out


@functools.cache
def _nonresonant_integrals():
    m, bb, bt, tt = _mhh_components()
    ints = np.array([_trapezoid_cumulative(c, m)[-1] for c in (bb, bt, tt)])
    norm = C.GGF_HH_XSEC_SM_13TEV / (ints[0] + 2 * ints[1] + ints[2])
    return norm * ints  # fb: sigma(k) = I_BB + 2 k I_BT + k^2 I_TT


def nonresonant_xsec(kappa_lambda):
    """Emulated (LO heavy-top) sigma(gg -> hh) at 13 TeV in fb (before BR); exactly quadratic.

    One kappa-independent factor normalises the LO integral to 31.05 fb at kappa = 1; the minimum
    lies at ``NONRESONANT_XSEC_MINIMUM`` (~2.1) where this approximation puts it. This is the
    normalisation of the shapes only: samples are normalised to :func:`nonresonant_xsec_nnlo`.
    """
    i_bb, i_bt, i_tt = _nonresonant_integrals()
    k = np.asarray(kappa_lambda, dtype=np.float64)
    out = i_bb + 2.0 * k * i_bt + k * k * i_tt
    return float(out) if out.ndim == 0 else out


def nonresonant_xsec_nnlo(kappa_lambda):
    """sigma_NNLO(gg -> hh) at 13 TeV in fb (before BR): ``constants.ggf_hh_xsec_13tev``, the
    normalisation of every non-resonant sample (PHYSICS.md, Calibration numbers)."""
    out = C.ggf_hh_xsec_13tev(np.asarray(kappa_lambda, dtype=np.float64))
    return float(out) if np.ndim(out) == 0 else out


def nonresonant_k_factor(kappa_lambda):
    """K(kappa) = sigma_NNLO(kappa) / emulated sigma(kappa): the factor from the emulated shape
    normalisation to the sample normalisation (1 at kappa = 1 within 5e-4)."""
    return nonresonant_xsec_nnlo(kappa_lambda) / nonresonant_xsec(kappa_lambda)


def nonresonant_morphing_coefficients(basis_kappas, kappa_lambda) -> np.ndarray:
    """Coefficients d_i with template(kappa) = sum_i d_i basis_i for NNLO-normalised samples.

    d_i(kappa) = c_i(kappa) K(kappa) / K(kappa_i), with c_i the Lagrange coefficients of
    ``hhcoffea.stats.morphing.basis_coefficients``: exact for the shapes (the emulated densities
    are quadratic in kappa) and for the total, sum_i d_i sigma_NNLO(kappa_i) = sigma_NNLO(kappa).
    Shape ``(3,)`` or ``(n, 3)`` like ``basis_coefficients``.
    """
    from ..stats.morphing import basis_coefficients  # the one Lagrange inversion; stats is heavy

    basis = np.asarray(basis_kappas, dtype=float)
    c = basis_coefficients(basis, kappa_lambda)
    k_target = np.asarray(nonresonant_k_factor(kappa_lambda), dtype=float)[..., None]
    return c * k_target / nonresonant_k_factor(basis)


def nonresonant_xsec_coefficients() -> tuple[float, float, float]:
    """(c0, c1, c2) with nonresonant_xsec(k) = c0 + c1 k + c2 k^2 (fb, before BR)."""
    i_bb, i_bt, i_tt = _nonresonant_integrals()
    return float(i_bb), float(2 * i_bt), float(i_tt)


def mhh_density(m_hh, kappa_lambda):
    """dsigma/dm_hh (fb/GeV, before BR) of the emulation at ``m_hh`` for ``kappa_lambda``."""
    m, bb, bt, tt = _mhh_components()
    i_bb, i_bt, i_tt = _nonresonant_integrals()
    scale = i_bb / _trapezoid_cumulative(bb, m)[-1]
    k = float(kappa_lambda)
    return np.interp(m_hh, m, scale * (bb + 2 * k * bt + k * k * tt), left=0.0, right=0.0)


def sample_mhh(rng, n, kappa_lambda):
    """Draw ``n`` m_hh values for ``kappa_lambda`` by inverse CDF on a fine grid."""
    m, bb, bt, tt = _mhh_components()
    k = float(kappa_lambda)
    pdf = np.clip(bb + 2 * k * bt + k * k * tt, 0.0, None)
    cdf = _trapezoid_cumulative(pdf, m)
    cdf /= cdf[-1]
    return np.interp(rng.uniform(0.0, 1.0, n), cdf, m)


#: where each process's ``xsec_fb`` comes from (written to the sidecar)
XSEC_SOURCE = {
    "resonant": "calibrated to the four-tag cross sections of PHYSICS.md",
    "nonresonant": "NNLO sigma(kappa_lambda) of PHYSICS.md x BR(hh->4b); the emulation gives shape and acceptance",
    "qcd": "calibrated to the four-tag cross section of PHYSICS.md",
    "ttbar": "832 pb x BR(all-hadronic) 0.457, not calibrated",
}


# --- resonant and per-sample cross sections -----------------------------------------------------
def resonant_xsec(m_x):
    """sigma(pp -> X -> hh -> 4b) at 13 TeV in fb, log-interpolated in RESONANT_XSEC_TABLE."""
    masses = np.array(sorted(RESONANT_XSEC_TABLE))
    logs = np.log([RESONANT_XSEC_TABLE[m] for m in masses])
    m = np.asarray(m_x, dtype=np.float64)
    out = np.interp(m, masses, logs)
    lo_slope = (logs[1] - logs[0]) / (masses[1] - masses[0])
    hi_slope = (logs[-1] - logs[-2]) / (masses[-1] - masses[-2])
    out = np.where(m < masses[0], logs[0] + lo_slope * (m - masses[0]), out)
    out = np.where(m > masses[-1], logs[-1] + hi_slope * (m - masses[-1]), out)
    out = np.exp(out)
    return float(out) if out.ndim == 0 else out


def sample_xsec_fb(process: str, m_x: float | None, kappa_lambda: float | None) -> float:
    """``xsec_fb`` of a sample: sigma x BR into the generated final state at 13 TeV (fb).

    Non-resonant: sigma_NNLO(kappa) x BR(hh -> 4b) (kappa defaults to 1); resonant and
    backgrounds as calibrated.
    """
    if process == "resonant":
        if m_x is None:
            raise ValueError("process 'resonant' needs m_x (the X mass in GeV)")
        return resonant_xsec(float(m_x))
    if process == "nonresonant":
        return nonresonant_xsec_nnlo(1.0 if kappa_lambda is None else float(kappa_lambda)) * C.BR_HH_4B
    if process == "qcd":
        return QCD_XSEC_FB
    if process == "ttbar":
        return TTBAR_XSEC_FB
    raise ValueError(f"unknown process {process!r}")
