"""Hard processes: parton-level kinematics and truth of the four emulated processes.

**This is an emulation, not a Monte Carlo event generator.** Each process draws its partons from
simple, documented densities; nothing here is a matrix-element calculation. A process function
``(rng, n, m_x, kappa_lambda) -> HardProcess`` (``HARD_PROCESSES``) returns regular ``(n, k)``
arrays in GenPart order; ``detector.simulate`` adds ISR/FSR and makes jets from them.

``resonant``
    gg -> X (pdgId 35) -> hh -> bbbb. X: Breit-Wigner mass (``X_WIDTH`` GeV), pT of the
    initial-state recoil of a colour singlet (Gamma-distributed, scale growing as m_X^0.56:
    mean ~130 GeV at 500 GeV), Gaussian rapidity whose spread shrinks with m_X.
    X -> hh and h -> bb are isotropic in the parent rest frame.
``nonresonant``
    ggF hh -> bbbb at any kappa_lambda: m_hh from ``xsec.sample_mhh`` (the LO heavy-top density);
    the hh system gets the pT of a colour singlet's initial-state recoil (as the resonant X) and
    decays isotropically.
``qcd``
    QCD multi-b (pp -> bbbb): a 4b system with a falling mass spectrum (dsigma/dM ~ M^-3.8
    above ``QCD_M_MIN`` = 200 GeV), split into two b-bbar pairs with log-uniform masses and a
    forward-peaked decay angle, with a generator-level cut on the b quarks (pT > 30,
    |eta| < 2.7; vectorised rejection) so that ~3% of the events pass the four-tag cut. After the
    four-tag cut m_4j turns on gradually from ~150 GeV and peaks at ~275 GeV; 37% of it lies in
    [350, 550] and 5% in [800, 1050] (reference: 43% and 5.5%).
``ttbar``
    all-hadronic ttbar: t -> W b, W -> q q' (W -> c s in ``TTBAR_W_CS_FRACTION`` of decays, so
    c jets can be mistagged), Breit-Wigner top and W masses, m_tt from threshold with a
    Gamma-distributed excess.

GenPart order per event: resonant X, h, h, b, bbar (of the first h), b, bbar; nonresonant
h, h, b, bbar, b, bbar; qcd b, bbar, b, bbar; ttbar t, tbar, W+, W-, b, bbar, q, q' (W+),
q, q' (W-); the detector appends the ISR partons.
"""

from __future__ import annotations

import math

import numpy as np

from .. import constants as C
from .xsec import SQRT_S, sample_mhh

__all__ = ["HARD_PROCESSES", "PROCESSES", "HardProcess"]

PROCESSES = ("resonant", "nonresonant", "qcd", "ttbar")

# ---------------------------------------------------------------------------------------------
# Emulation tuning and kinematic inputs (not PHYSICS.md; chosen for this emulation)
# ---------------------------------------------------------------------------------------------
# particle masses/widths used only to build kinematics (PDG values)
B_QUARK_MASS = 4.8
C_QUARK_MASS = 1.5
S_QUARK_MASS = 0.1
W_MASS, W_WIDTH = 80.4, 2.1
TOP_MASS, TOP_WIDTH = 172.5, 1.4
X_WIDTH = 3.0  # GeV, narrow resonance ("a few GeV")
BW_TRUNCATION = 10.0  # Breit-Wigner masses drawn within +-10 widths

# production of the hard system (X, hh, 4b, tt): pT ~ Gamma(k, theta); y ~ N(0, sigma_y)
SYSTEM_PT_SHAPE, SYSTEM_PT_SCALE = 1.5, 15.0  # mean 22.5 GeV (4b, tt)
# colour-singlet systems (X, hh): the initial-state shower runs up to the kinematic limit (Pythia 8's
# default for a colour-singlet final state), so the recoil grows with the system mass M:
# theta = SINGLET_PT_SCALE (M / SINGLET_PT_M_REF)^SINGLET_PT_POWER. Showered hh samples: median
# pT(hh) 58 GeV at m_hh = 275 GeV, 69 GeV at 400, 100 GeV above 600 (mean / median 1.65)
SINGLET_PT_SHAPE = 0.8
SINGLET_PT_SCALE = 140.0  # GeV, at M = SINGLET_PT_M_REF: mean 112 GeV, median 73 GeV
SINGLET_PT_M_REF = 400.0
SINGLET_PT_POWER = 0.56
RAPIDITY_SPREAD = 0.35  # sigma_y = 0.35 ln(sqrt_s / M), clipped to [0.3, 2.0]

# qcd 4b: dsigma/dM ~ M^-QCD_M_POWER for M > QCD_M_MIN; pair masses log-uniform. Tuned so that
# after the four-tag cut ~37% of m_4j lies in [350, 550] and ~5% in [800, 1050] (seed 001 table 3:
# 43% and 5.5%), with the turn-on between ~150 and ~280 GeV coming from the pT > 40 cuts.
QCD_M_MIN = 200.0
QCD_M_POWER = 3.8
QCD_PAIR_MASS_MIN = 12.0
QCD_ANGLE_SPREAD = 0.9  # cos(theta*) = tanh(N(0, 0.9)): forward-peaked pair directions
QCD_GEN_PT_MIN = 30.0  # generator-level cut on each b quark (pT > 30, |eta| < 2.7); loses
QCD_GEN_ETA_MAX = 2.7  # only events that cannot pass the four-tag cut
QCD_GEN_ACCEPTANCE = 0.2  # first guess of the fraction passing it (sets the batch size)

# ttbar: m_tt = m_t1 + m_t2 + Gamma(k, theta)
TTBAR_EXCESS_SHAPE, TTBAR_EXCESS_SCALE = 1.6, 80.0
TTBAR_W_CS_FRACTION = 0.5

# GenPart codes
PDG_X, PDG_H, PDG_T, PDG_W, PDG_B, PDG_C, PDG_G = 35, 25, 6, 24, 5, 4, 21
STATUS_INTERMEDIATE, STATUS_OUTGOING, STATUS_ISR = 22, 23, 43


# ---------------------------------------------------------------------------------------------
# small four-vector helpers (arrays of any shape; p4 = (px, py, pz, E))
# ---------------------------------------------------------------------------------------------
def _boost_factors(beta):
    """gamma and (gamma - 1) / beta^2 of a boost by ``beta`` (shared by every vector boosted by it)."""
    bx, by, bz = beta
    b2 = bx * bx + by * by + bz * bz
    gamma = 1.0 / np.sqrt(1.0 - b2)
    with np.errstate(divide="ignore", invalid="ignore"):
        g2 = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    return gamma, g2


def _boosted(px, py, pz, e, bp, beta, gamma, g2):
    # (px, py, pz, e) boosted by beta, given beta.p = bp and the boost factors
    bx, by, bz = beta
    k = g2 * bp + gamma * e
    return px + k * bx, py + k * by, pz + k * bz, gamma * (e + bp)


def _boost(p4, beta):
    px, py, pz, e = p4
    bx, by, bz = beta
    gamma, g2 = _boost_factors(beta)
    return _boosted(px, py, pz, e, bx * px + by * py + bz * pz, beta, gamma, g2)


def _beta(p4):
    return p4[0] / p4[3], p4[1] / p4[3], p4[2] / p4[3]


def _rest_frame_momenta(mass, m1, m2, cos_theta, phi):
    """Daughter momentum ``pstar`` of a two-body decay and the first daughter's (qx, qy, qz)."""
    mass2 = mass**2
    pstar = np.sqrt(np.clip((mass2 - (m1 + m2) ** 2) * (mass2 - (m1 - m2) ** 2), 0, None)) / (2 * mass)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    return pstar, pstar * sin_theta * np.cos(phi), pstar * sin_theta * np.sin(phi), pstar * cos_theta


def _daughters(parent, m1, m2, pstar, qx, qy, qz):
    """The two daughters (q and -q in the rest frame) boosted into the lab frame of ``parent``.
    The boost factors and beta.q are computed once for both (the same values as boosting each
    on its own: beta.(-q) is -(beta.q) exactly, IEEE products and sums being sign-symmetric)."""
    beta = _beta(parent)
    gamma, g2 = _boost_factors(beta)
    bx, by, bz = beta
    bp = bx * qx + by * qy + bz * qz
    p2 = pstar**2
    d1 = _boosted(qx, qy, qz, np.sqrt(p2 + m1**2), bp, beta, gamma, g2)
    d2 = _boosted(-qx, -qy, -qz, np.sqrt(p2 + m2**2), -bp, beta, gamma, g2)
    return d1, d2


def _two_body(rng, parent, mass, m1, m2, cos_theta=None):
    """Decay ``parent`` (mass ``mass``) to masses m1, m2; isotropic unless cos_theta is given."""
    n = np.shape(mass)
    m1 = np.broadcast_to(m1, n)
    m2 = np.broadcast_to(m2, n)
    if cos_theta is None:
        cos_theta = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    pstar, qx, qy, qz = _rest_frame_momenta(mass, m1, m2, cos_theta, phi)
    return _daughters(parent, m1, m2, pstar, qx, qy, qz)


def _system(rng, mass, singlet=False):
    """Four-vector of a gg-produced system of ``mass``: pT from the initial-state recoil (small for
    coloured final states; growing with the mass for a colour ``singlet``), rapidity spread."""
    n = mass.shape[0]
    if singlet:
        pt = rng.gamma(SINGLET_PT_SHAPE, 1.0, n) * (SINGLET_PT_SCALE * (mass / SINGLET_PT_M_REF) ** SINGLET_PT_POWER)
    else:
        pt = rng.gamma(SYSTEM_PT_SHAPE, SYSTEM_PT_SCALE, n)
    sigma_y = np.clip(RAPIDITY_SPREAD * np.log(SQRT_S / mass), 0.3, 2.0)
    y = rng.normal(0.0, 1.0, n) * sigma_y
    phi = rng.uniform(-np.pi, np.pi, n)
    mt = np.sqrt(mass**2 + pt**2)
    return pt * np.cos(phi), pt * np.sin(phi), mt * np.sinh(y), mt * np.cosh(y)


def _breit_wigner(rng, n, m0, width, low=None, high=None):
    """Truncated Breit-Wigner (Cauchy) masses by inverse CDF."""
    low = m0 - BW_TRUNCATION * width if low is None else max(low, m0 - BW_TRUNCATION * width)
    high = m0 + BW_TRUNCATION * width if high is None else min(high, m0 + BW_TRUNCATION * width)
    a = np.arctan(2.0 * (low - m0) / width)
    b = np.arctan(2.0 * (high - m0) / width)
    return m0 + 0.5 * width * np.tan(a + rng.uniform(0.0, 1.0, n) * (b - a))


# ---------------------------------------------------------------------------------------------
# the processes
# ---------------------------------------------------------------------------------------------
class HardProcess:
    """Hard-process truth: regular (n, k) arrays in GenPart order."""

    def __init__(self, n):
        self.n = n
        self.p4: list = []  # list of (px, py, pz, E) per entry
        self.mass: list = []
        self.pdg: list = []
        self.status: list = []
        self.mother: list = []
        self.final: list = []

    def add(self, p4, mass, pdg, status, mother, final):
        self.p4.append(p4)
        self.mass.append(np.broadcast_to(np.asarray(mass, dtype=np.float64), (self.n,)))
        self.pdg.append(np.broadcast_to(np.asarray(pdg, dtype=np.int32), (self.n,)))
        self.status.append(status)
        self.mother.append(mother)
        self.final.append(final)
        return len(self.p4) - 1

    def columns(self):
        comp = [np.stack([p[i] for p in self.p4], axis=1) for i in range(4)]
        mass = np.stack(self.mass, axis=1)
        pdg = np.stack(self.pdg, axis=1)
        k = len(self.p4)
        status = np.broadcast_to(np.asarray(self.status, dtype=np.int32), (self.n, k))
        mother = np.broadcast_to(np.asarray(self.mother, dtype=np.int32), (self.n, k))
        final = np.asarray(self.final, dtype=bool)
        return comp, mass, pdg, status, mother, final


def _h_to_bb(rng, hard, h_p4, h_index):
    n = hard.n
    b1, b2 = _two_body(rng, h_p4, np.full(n, C.HIGGS_MASS), B_QUARK_MASS, B_QUARK_MASS)
    hard.add(b1, B_QUARK_MASS, PDG_B, STATUS_OUTGOING, h_index, True)
    hard.add(b2, B_QUARK_MASS, -PDG_B, STATUS_OUTGOING, h_index, True)


def _hh_from_system(rng, hard, system, mhh, mother):
    h1, h2 = _two_body(rng, system, mhh, C.HIGGS_MASS, C.HIGGS_MASS)
    i1 = hard.add(h1, C.HIGGS_MASS, PDG_H, STATUS_INTERMEDIATE, mother, False)
    i2 = hard.add(h2, C.HIGGS_MASS, PDG_H, STATUS_INTERMEDIATE, mother, False)
    _h_to_bb(rng, hard, h1, i1)
    _h_to_bb(rng, hard, h2, i2)


def _hard_resonant(rng, n, m_x, kappa_lambda):
    mass = _breit_wigner(rng, n, m_x, X_WIDTH, low=2 * C.HIGGS_MASS + 1e-3)
    system = _system(rng, mass, singlet=True)
    hard = HardProcess(n)
    ix = hard.add(system, mass, PDG_X, STATUS_INTERMEDIATE, -1, False)
    _hh_from_system(rng, hard, system, mass, ix)
    return hard


def _hard_nonresonant(rng, n, m_x, kappa_lambda):
    mhh = sample_mhh(rng, n, kappa_lambda)
    system = _system(rng, mhh, singlet=True)
    hard = HardProcess(n)
    _hh_from_system(rng, hard, system, mhh, -1)
    return hard


def _qcd_generated(p4):
    """The generator-level cut on one b quark: pT > ``QCD_GEN_PT_MIN``, |eta| < ``QCD_GEN_ETA_MAX``."""
    px, py, pz, _ = p4
    pt = np.hypot(px, py)
    return (pt > QCD_GEN_PT_MIN) & (np.abs(pz) < pt * math.sinh(QCD_GEN_ETA_MAX))


def _qcd_partons(rng, n):
    """n unconstrained 4b events, cut at generator level: (passed, [(px, py, pz, E) of b, bbar,
    b, bbar of the passing events]). Every draw is made for all n events, in the order of decaying
    the system and then each pair (``_two_body``); the second pair's kinematics is computed only
    for the events whose first pair passed (the same operations on the same values)."""
    u = rng.uniform(0.0, 1.0, n)
    mass = np.minimum(QCD_M_MIN * (1.0 - u) ** (-1.0 / (QCD_M_POWER - 1.0)), 0.5 * SQRT_S)
    system = _system(rng, mass)
    lo = np.log(QCD_PAIR_MASS_MIN)
    hi = np.log(0.5 * mass)
    ma = np.exp(lo + rng.uniform(0.0, 1.0, n) * (hi - lo))
    mb = np.exp(lo + rng.uniform(0.0, 1.0, n) * (hi - lo))
    cos_theta = np.tanh(rng.normal(0.0, QCD_ANGLE_SPREAD, n))
    phi = rng.uniform(-np.pi, np.pi, n)
    pair_angles = [(rng.uniform(-1.0, 1.0, n), rng.uniform(-np.pi, np.pi, n)) for _ in range(2)]
    m_b = np.broadcast_to(B_QUARK_MASS, (n,))

    # system -> pair a (all events) + pair b (later, where pair a passed); pair a -> b bbar
    pstar, qx, qy, qz = _rest_frame_momenta(mass, ma, mb, cos_theta, phi)
    beta = _beta(system)
    gamma, g2 = _boost_factors(beta)
    bp = beta[0] * qx + beta[1] * qy + beta[2] * qz
    p2 = pstar**2
    pa = _boosted(qx, qy, qz, np.sqrt(p2 + ma**2), bp, beta, gamma, g2)
    quarks_a = _daughters(pa, m_b, m_b, *_rest_frame_momenta(ma, m_b, m_b, *pair_angles[0]))
    passed = _qcd_generated(quarks_a[0]) & _qcd_generated(quarks_a[1])

    s = np.flatnonzero(passed)
    beta_s = tuple(c[s] for c in beta)
    pb = _boosted(-qx[s], -qy[s], -qz[s], np.sqrt(p2[s] + mb[s] ** 2), -bp[s], beta_s, gamma[s], g2[s])
    m_b = m_b[: s.size]
    quarks_b = _daughters(pb, m_b, m_b, *_rest_frame_momenta(mb[s], m_b, m_b, *(a[s] for a in pair_angles[1])))
    passed_b = _qcd_generated(quarks_b[0]) & _qcd_generated(quarks_b[1])
    passed[s[~passed_b]] = False
    keep = s[passed_b]
    quarks = [tuple(c[keep] for c in q) for q in quarks_a] + [tuple(c[passed_b] for c in q) for q in quarks_b]
    return passed, quarks


def _hard_qcd(rng, n, m_x, kappa_lambda):
    # generator-level cut on the four b quarks (like ptb/etab in a matrix-element generator),
    # applied by vectorised rejection: draw batches until n events pass, keep the first n
    batches, have, expected = [], 0, QCD_GEN_ACCEPTANCE
    while have < n:
        size = int(min(max((n - have) / expected * 1.05, 1000), 4_000_000))
        ok, quarks = _qcd_partons(rng, size)
        expected = max(ok.mean(), 1e-3)
        batches.append(quarks)
        have += int(ok.sum())
    hard = HardProcess(n)
    for i in range(4):
        p4 = tuple(np.concatenate([b[i][c] for b in batches])[:n] for c in range(4))
        hard.add(p4, B_QUARK_MASS, PDG_B if i % 2 == 0 else -PDG_B, STATUS_OUTGOING, -1, True)
    return hard


def _hard_ttbar(rng, n, m_x, kappa_lambda):
    mt1 = _breit_wigner(rng, n, TOP_MASS, TOP_WIDTH)
    mt2 = _breit_wigner(rng, n, TOP_MASS, TOP_WIDTH)
    mtt = mt1 + mt2 + rng.gamma(TTBAR_EXCESS_SHAPE, TTBAR_EXCESS_SCALE, n)
    system = _system(rng, mtt)
    t1, t2 = _two_body(rng, system, mtt, mt1, mt2)
    hard = HardProcess(n)
    it1 = hard.add(t1, mt1, PDG_T, STATUS_INTERMEDIATE, -1, False)
    it2 = hard.add(t2, mt2, -PDG_T, STATUS_INTERMEDIATE, -1, False)
    decays = []
    for sign, t_p4, mt, it in ((1, t1, mt1, it1), (-1, t2, mt2, it2)):
        mw = _breit_wigner(rng, n, W_MASS, W_WIDTH, high=None)
        mw = np.minimum(mw, mt - B_QUARK_MASS - 0.5)
        w, b = _two_body(rng, t_p4, mt, mw, B_QUARK_MASS)
        decays.append((sign, w, mw, b, it))
    iw = [hard.add(w, mw, sign * PDG_W, STATUS_INTERMEDIATE, it, False) for sign, w, mw, b, it in decays]
    for sign, _w, _mw, b, it in decays:
        hard.add(b, B_QUARK_MASS, sign * PDG_B, STATUS_OUTGOING, it, True)
    for (sign, w, mw, _b, _it), wi in zip(decays, iw):
        cs = rng.uniform(0.0, 1.0, n) < TTBAR_W_CS_FRACTION
        # W+ -> u dbar | c sbar ; W- -> d ubar | s cbar (up-type quark first for W+)
        up_pdg = np.where(cs, 4, 2) * sign
        down_pdg = -np.where(cs, 3, 1) * sign
        up_m = np.where(cs, C_QUARK_MASS, 0.0)
        down_m = np.where(cs, S_QUARK_MASS, 0.0)
        q1, q2 = _two_body(rng, w, mw, up_m, down_m)
        hard.add(q1, up_m, up_pdg, STATUS_OUTGOING, wi, True)
        hard.add(q2, down_m, down_pdg, STATUS_OUTGOING, wi, True)
    return hard


HARD_PROCESSES = {
    "resonant": _hard_resonant,
    "nonresonant": _hard_nonresonant,
    "qcd": _hard_qcd,
    "ttbar": _hard_ttbar,
}
assert tuple(HARD_PROCESSES) == PROCESSES
