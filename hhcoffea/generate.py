"""Sample emulation: NanoAOD-like ROOT files (FORMATS.md layout 2) for the HH->4b analysis.

**This is an emulation, not a Monte Carlo event generator.** It draws parton-level kinematics
from simple, documented densities and passes them through a Delphes-like detector
parametrisation, so that the analysis chain (pairings, selections, SPA-Net, limits) has
realistic-looking input with known truth. Nothing here is a matrix-element calculation.

Processes (``PROCESSES``)
-------------------------
``resonant``
    gg -> X (pdgId 35) -> hh -> bbbb. X: Breit-Wigner mass (``X_WIDTH`` GeV), small pT
    (Gamma-distributed, mean ~22 GeV), Gaussian rapidity whose spread shrinks with m_X.
    X -> hh and h -> bb are isotropic in the parent rest frame.
``nonresonant``
    ggF hh -> bbbb at any kappa_lambda. m_hh is drawn by numerical inverse-CDF sampling
    (fine grid) from |A|^2 x gluon luminosity x phase space with the LO heavy-top amplitude of
    PHYSICS.md ("Calibration numbers"): A = kappa C_tri F_tri + F_box, C_tri = 3 m_h^2/(s-m_h^2),
    F_tri = 2/3, F_box = -2/3; dsigma/dm_hh ~ (2 m_hh/s) dL_gg/dtau(tau) * s_hat beta |A|^2.
    One kappa-independent factor normalises the LO integral to sigma_SM(13 TeV) = 31.05 fb, so
    ``nonresonant_xsec`` is exactly quadratic in kappa and any kappa shape is an exact linear
    combination of three basis samples (``mhh_density`` gives the shape). With the effective
    gluon density below, the emulated SM m_hh peaks at ~435 GeV (median ~580 GeV: the
    heavy-top amplitude has a harder tail than the full theory) and sigma(kappa) =
    57.73 - 34.97 kappa + 8.290 kappa^2 fb has its minimum at ``NONRESONANT_XSEC_MINIMUM`` =
    2.11 (the NNLO parametrisation of PHYSICS.md has it at 2.28, and 11.06 kappa^2; the LO
    emulation is flatter in kappa). The hh system gets a small pT and decays isotropically.
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

Every process gets extra ISR/FSR partons (Poisson count, falling pT, mostly light, some c and
g->bb), recorded in GenPart with status 43 and mother -1.

Detector (Delphes-like)
-----------------------
Partons closer than dR < 0.4 are merged into one jet (four-vector sum; flavour b > c > light). Each jet: semileptonic b/c decays put a fraction of the parton four-vector into a
neutrino (-> MET); an out-of-cone response r(pT) = ``RESPONSE_INF`` - ``RESPONSE_A``/sqrt(pT) < 1
scales the rest; eta/phi are smeared by ``ANGLE_SMEAR``/pT; pT is smeared with
``constants.jet_resolution`` (5.2% (+) 150%/sqrt(pT)); jets need pT >= 20 GeV and |eta| < 4.5
and are pT-ordered; a jet's mass adds a shower term (~9% of pT) to the parton mass. The
response (0.91 at 60 GeV, 0.92 at 150 GeV) was tuned so that, for resonant m_X = 500 with truth
pairing (candidates ordered by scalar-sum jet pT; four matched jets with pT > 40, |eta| < 2.5),
m_h1 peaks at ~121.5 GeV (median 122.5) and m_h2 at ~109.5 GeV (median 109) like the reference
analysis' 120/110 (at m_X = 1000: medians 125/113).
b-tagging: per jet truth flavour at the working point (constants.BTAG_WORKING_POINTS):
P = b_efficiency (flavour 5), 1/c_rejection (4), 1/light_rejection (otherwise), and only inside
the tracker, |eta| < ``BTAG_ETA_MAX`` (2.5; no tags beyond, as in the Delphes cards).
MET = neutrinos + jet mismeasurement + jets beyond |eta| 4.5 + Gaussian noise.
Electron/Muon collections exist and are mostly empty (``LEPTON_RATE`` per event).

Cross sections (dataset metadata, written to ``<file>.json``)
-------------------------------------------------------------
``xsec_fb`` is sigma x BR into the generated final state at 13 TeV; a processor weight is
genWeight (always 1) x xsec_fb x luminosity / n_generated.

* resonant: ``RESONANT_XSEC_TABLE`` sigma(pp -> X -> hh -> 4b) in fb vs m_X, interpolated
  linearly in log(sigma) (extrapolated with the edge slopes). Calibrated so that after the
  four-tag cut (>= 4 b-tagged jets, pT > 40, |eta| < 2.5, MV2c10_70) the accepted cross section
  is 3.64 fb at m_X = 500 and 0.081 fb at m_X = 1000 (PHYSICS.md calibration, seed 001 table
  3); other masses follow a power law sigma_acc ~ m_X^-5.49 through those two points divided by
  the four-tag efficiency measured with this generator (``RESONANT_FOUR_TAG_EFFICIENCY``).
* nonresonant: ``nonresonant_xsec(kappa) * BR_HH_4B``.
  Four-tag efficiency: 6.05% at 500 GeV, 12.4% at 1000 GeV -> sigma x BR = 60.1 fb and 0.651 fb.
* qcd: ``QCD_XSEC_FB`` = 6.03e3 fb / measured four-tag efficiency ``QCD_FOUR_TAG_EFFICIENCY``
  (2.92%) = 2.06e5 fb (for the generator-level cut above).
* ttbar: 832 pb x BR(all-hadronic) 0.457 = 3.80e5 fb (four-tag efficiency ~2e-4, not calibrated).

The efficiencies are re-measured with ``python benchmarks/generate.py --calibrate``.

Other metadata: ``sqrt_s`` is in GeV (13000.0); ``tree`` = "Events". Files are written with LZ4
compression (ZLIB would cap the rate at ~30k events/s); reading them needs the ``lz4`` and
``xxhash`` modules, as any LZ4 ROOT file does.

Determinism: each chunk has its own ``np.random.default_rng`` seeded from (seed, process,
m_x, kappa_lambda, chunk index), so a given (seed, parameters, chunk_size) always gives
byte-identical arrays; different seeds (or masses, kappas) give independent samples.
GenPart order per event: resonant X, h, h, b, bbar (of the first h), b, bbar; nonresonant
h, h, b, bbar, b, bbar; qcd b, bbar, b, bbar; ttbar t, tbar, W+, W-, b, bbar, q, q' (W+),
q, q' (W-); then the ISR partons.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
from pathlib import Path

import awkward as ak
import numpy as np
import uproot

from . import constants as C
from .kinematics import delta_phi, from_cartesian, to_cartesian

PROCESSES = ("resonant", "nonresonant", "qcd", "ttbar")
TREE_NAME = "Events"
SQRT_S = 13000.0  # GeV; all samples are 13 TeV kinematics (PHYSICS.md, Calibration)

# ---------------------------------------------------------------------------------------------
# Generator tuning parameters (not in PHYSICS.md; chosen for this emulation)
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
SYSTEM_PT_SHAPE, SYSTEM_PT_SCALE = 1.5, 15.0  # mean 22.5 GeV
RAPIDITY_SPREAD = 0.35  # sigma_y = 0.35 ln(sqrt_s / M), clipped to [0.3, 2.0]

# nonresonant m_hh: effective gluon density x g(x) = x^-delta (1 - x)^eta (normalisation
# irrelevant). Steeper than a real gluon at large x on purpose: it stands in for the fall-off of
# the full-top-mass box that the heavy-top amplitude lacks, so that the SM m_hh peaks at ~430 GeV
# and sigma(k=5)/sigma(k=1) = 2.9 (NNLO: 3.05), with the minimum of sigma(k) at k = 2.11.
GLUON_DELTA, GLUON_ETA = 0.8, 15.0
MHH_GRID_MAX = 4000.0  # GeV, upper end of the inverse-CDF grid
MHH_GRID_POINTS = 20001

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

# ISR/FSR partons: Poisson count (capped), Pareto pT above ISR_PT_MIN, Gaussian eta
ISR_MEAN = 2.5
ISR_MAX = 8  # P(Poisson(2.5) > 8) = 1e-3
ISR_PT_MIN = 15.0
ISR_PT_INDEX = 2.2  # pdf ~ pT^-(1 + index)
ISR_PT_MAX = 1500.0
ISR_ETA_SPREAD = 2.0
ISR_ETA_MAX = 5.0  # clip (keeps the parton energies physical)
ISR_FRACTION_C = 0.06
ISR_FRACTION_B = 0.025  # g -> bb

# detector
MERGE_DR = 0.4  # anti-kT R = 0.4
RESPONSE_INF = 0.93  # r(pT) = RESPONSE_INF - RESPONSE_A / sqrt(pT / GeV): 0.91 at 60 GeV
RESPONSE_A = 0.15
RESPONSE_MIN = 0.5
SEMILEPTONIC_B = 0.20  # probability that a b jet loses a neutrino
SEMILEPTONIC_C = 0.10
NEUTRINO_FRACTION_BETA = (1.5, 8.5)  # fraction of the parton momentum carried by the neutrino
ANGLE_SMEAR = 1.0  # GeV: sigma(eta) = sigma(phi) = min(ANGLE_SMEAR / pT, ANGLE_SMEAR_MAX)
ANGLE_SMEAR_MAX = 0.05
JET_MASS_FRACTION = 0.09  # shower mass: m_jet^2 = m^2 + (f pT)^2, f ~ lognormal(median 0.09)
JET_MASS_SPREAD = 0.35
JET_ETA_MAX = 4.5
BTAG_ETA_MAX = C.FOUR_TAG_ETA_MAX  # b-tagging only inside the tracker
MET_NOISE = 5.0  # GeV per component
LEPTON_RATE = 0.02  # mean electrons (and muons) per event
LEPTON_PT_MIN, LEPTON_PT_SLOPE = 10.0, 15.0

# ---------------------------------------------------------------------------------------------
# Cross sections
# ---------------------------------------------------------------------------------------------
# Four-tag efficiencies (>= 4 b-tags, pT > 40, |eta| < 2.5, MV2c10_70) measured with this
# generator, 800k events per mass (two independent 400k runs of
# `python benchmarks/generate.py --calibrate -n 400000`, averaged; statistical errors <= 0.0004).
# Above ~1.2 TeV the b quarks of a Higgs start to merge into one jet (dR < 0.4).
RESONANT_FOUR_TAG_EFFICIENCY: dict[float, float] = {
    260.0: 0.02816, 300.0: 0.02417, 350.0: 0.03063, 400.0: 0.04025, 450.0: 0.05041,
    500.0: 0.06054, 600.0: 0.07783, 700.0: 0.09207, 800.0: 0.10455, 900.0: 0.11535,
    1000.0: 0.12443, 1100.0: 0.13260, 1200.0: 0.14034, 1400.0: 0.09940, 1600.0: 0.06669,
    2000.0: 0.03527, 2500.0: 0.01913, 3000.0: 0.01124,
}  # fmt: skip
# The four-tag accepted cross section is a power law through PHYSICS.md's calibration points,
# sigma_acc(m) = 3.64 fb (m / 500)^-p with p = ln(3.64 / 0.081) / ln 2 = 5.49, so it passes
# through 3.64 fb at 500 GeV and 0.081 fb at 1000 GeV (constants.RESONANT_XSEC_AFTER_FOUR_TAG).
RESONANT_ACCEPTED_POWER = math.log(
    C.RESONANT_XSEC_AFTER_FOUR_TAG[500.0] / C.RESONANT_XSEC_AFTER_FOUR_TAG[1000.0]
) / math.log(2.0)
# sigma(pp -> X -> hh -> bbbb) at 13 TeV in fb = sigma_acc(m) / efficiency(m); log-interpolated.
RESONANT_XSEC_TABLE: dict[float, float] = {
    260.0: 4683.5, 300.0: 2487.4, 350.0: 842.07, 400.0: 307.86, 450.0: 128.77,
    500.0: 60.126, 600.0: 17.189, 700.0: 6.2342, 800.0: 2.6375, 900.0: 1.2521,
    1000.0: 0.65094, 1100.0: 0.36201, 1200.0: 0.21213, 1400.0: 0.12849, 1600.0: 0.092009,
    2000.0: 0.051105, 2500.0: 0.027678, 3000.0: 0.017321,
}  # fmt: skip
# QCD pp -> bbbb (after the generator-level cut): 6.03e3 fb after the four-tag cut (PHYSICS.md,
# constants.QCD_4B_XSEC_AFTER_FOUR_TAG) / measured four-tag efficiency (5.6M events, seeds 1-3)
QCD_FOUR_TAG_EFFICIENCY = 0.02921  # +- 0.00007
QCD_XSEC_FB = C.QCD_4B_XSEC_AFTER_FOUR_TAG / QCD_FOUR_TAG_EFFICIENCY  # 2.064e5 fb
# all-hadronic ttbar (not calibrated to the four-tag table; four-tag efficiency ~1.9e-4)
TTBAR_XSEC_PB = 832.0  # 13 TeV NNLO+NNLL
TTBAR_BR_ALL_HADRONIC = 0.457
TTBAR_XSEC_FB = TTBAR_XSEC_PB * 1e3 * TTBAR_BR_ALL_HADRONIC

_PDG_X, _PDG_H, _PDG_T, _PDG_W, _PDG_B, _PDG_C, _PDG_G = 35, 25, 6, 24, 5, 4, 21
_STATUS_INTERMEDIATE, _STATUS_OUTGOING, _STATUS_ISR = 22, 23, 43


# ---------------------------------------------------------------------------------------------
# small four-vector helpers (arrays of any shape; p4 = (px, py, pz, E))
# ---------------------------------------------------------------------------------------------
def _boost(p4, beta):
    px, py, pz, e = p4
    bx, by, bz = beta
    b2 = bx * bx + by * by + bz * bz
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = bx * px + by * py + bz * pz
    with np.errstate(divide="ignore", invalid="ignore"):
        g2 = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    k = g2 * bp + gamma * e
    return px + k * bx, py + k * by, pz + k * bz, gamma * (e + bp)


def _beta(p4):
    return p4[0] / p4[3], p4[1] / p4[3], p4[2] / p4[3]


def _two_body(rng, parent, mass, m1, m2, cos_theta=None):
    """Decay ``parent`` (mass ``mass``) to masses m1, m2; isotropic unless cos_theta is given."""
    n = np.shape(mass)
    m1 = np.broadcast_to(m1, n)
    m2 = np.broadcast_to(m2, n)
    pstar = np.sqrt(np.clip((mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2), 0, None)) / (2 * mass)
    if cos_theta is None:
        cos_theta = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    qx, qy, qz = pstar * sin_theta * np.cos(phi), pstar * sin_theta * np.sin(phi), pstar * cos_theta
    beta = _beta(parent)
    d1 = _boost((qx, qy, qz, np.sqrt(pstar**2 + m1**2)), beta)
    d2 = _boost((-qx, -qy, -qz, np.sqrt(pstar**2 + m2**2)), beta)
    return d1, d2


def _system(rng, mass):
    """Four-vector of a gg-produced system of ``mass``: small pT, rapidity spread."""
    n = mass.shape[0]
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


class _Hard:
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
    hard.add(b1, B_QUARK_MASS, _PDG_B, _STATUS_OUTGOING, h_index, True)
    hard.add(b2, B_QUARK_MASS, -_PDG_B, _STATUS_OUTGOING, h_index, True)


def _hh_from_system(rng, hard, system, mhh, mother):
    h1, h2 = _two_body(rng, system, mhh, C.HIGGS_MASS, C.HIGGS_MASS)
    i1 = hard.add(h1, C.HIGGS_MASS, _PDG_H, _STATUS_INTERMEDIATE, mother, False)
    i2 = hard.add(h2, C.HIGGS_MASS, _PDG_H, _STATUS_INTERMEDIATE, mother, False)
    _h_to_bb(rng, hard, h1, i1)
    _h_to_bb(rng, hard, h2, i2)


def _hard_resonant(rng, n, m_x, kappa_lambda):
    mass = _breit_wigner(rng, n, m_x, X_WIDTH, low=2 * C.HIGGS_MASS + 1e-3)
    system = _system(rng, mass)
    hard = _Hard(n)
    ix = hard.add(system, mass, _PDG_X, _STATUS_INTERMEDIATE, -1, False)
    _hh_from_system(rng, hard, system, mass, ix)
    return hard


def _hard_nonresonant(rng, n, m_x, kappa_lambda):
    mhh = sample_mhh(rng, n, kappa_lambda)
    system = _system(rng, mhh)
    hard = _Hard(n)
    _hh_from_system(rng, hard, system, mhh, -1)
    return hard


def _qcd_partons(rng, n):
    """n unconstrained 4b events: ((px, py, pz, E) of b, bbar, b, bbar)."""
    u = rng.uniform(0.0, 1.0, n)
    mass = np.minimum(QCD_M_MIN * (1.0 - u) ** (-1.0 / (QCD_M_POWER - 1.0)), 0.5 * SQRT_S)
    system = _system(rng, mass)
    lo = np.log(QCD_PAIR_MASS_MIN)
    hi = np.log(0.5 * mass)
    ma = np.exp(lo + rng.uniform(0.0, 1.0, n) * (hi - lo))
    mb = np.exp(lo + rng.uniform(0.0, 1.0, n) * (hi - lo))
    cos_theta = np.tanh(rng.normal(0.0, QCD_ANGLE_SPREAD, n))
    pa, pb = _two_body(rng, system, mass, ma, mb, cos_theta=cos_theta)
    quarks = []
    for pair, m in ((pa, ma), (pb, mb)):
        quarks.extend(_two_body(rng, pair, m, B_QUARK_MASS, B_QUARK_MASS))
    return quarks


def _hard_qcd(rng, n, m_x, kappa_lambda):
    # generator-level cut on the four b quarks (like ptb/etab in a matrix-element generator),
    # applied by vectorised rejection: draw batches until n events pass, keep the first n
    batches, have, expected = [], 0, QCD_GEN_ACCEPTANCE
    while have < n:
        size = int(min(max((n - have) / expected * 1.05, 1000), 4_000_000))
        quarks = _qcd_partons(rng, size)
        ok = np.ones(size, dtype=bool)
        for px, py, pz, _ in quarks:
            pt = np.hypot(px, py)
            ok &= (pt > QCD_GEN_PT_MIN) & (np.abs(pz) < pt * math.sinh(QCD_GEN_ETA_MAX))
        expected = max(ok.mean(), 1e-3)
        batches.append([tuple(c[ok] for c in q) for q in quarks])
        have += int(ok.sum())
    hard = _Hard(n)
    for i in range(4):
        p4 = tuple(np.concatenate([b[i][c] for b in batches])[:n] for c in range(4))
        hard.add(p4, B_QUARK_MASS, _PDG_B if i % 2 == 0 else -_PDG_B, _STATUS_OUTGOING, -1, True)
    return hard


def _hard_ttbar(rng, n, m_x, kappa_lambda):
    mt1 = _breit_wigner(rng, n, TOP_MASS, TOP_WIDTH)
    mt2 = _breit_wigner(rng, n, TOP_MASS, TOP_WIDTH)
    mtt = mt1 + mt2 + rng.gamma(TTBAR_EXCESS_SHAPE, TTBAR_EXCESS_SCALE, n)
    system = _system(rng, mtt)
    t1, t2 = _two_body(rng, system, mtt, mt1, mt2)
    hard = _Hard(n)
    it1 = hard.add(t1, mt1, _PDG_T, _STATUS_INTERMEDIATE, -1, False)
    it2 = hard.add(t2, mt2, -_PDG_T, _STATUS_INTERMEDIATE, -1, False)
    decays = []
    for sign, t_p4, mt, it in ((1, t1, mt1, it1), (-1, t2, mt2, it2)):
        mw = _breit_wigner(rng, n, W_MASS, W_WIDTH, high=None)
        mw = np.minimum(mw, mt - B_QUARK_MASS - 0.5)
        w, b = _two_body(rng, t_p4, mt, mw, B_QUARK_MASS)
        decays.append((sign, w, mw, b, it))
    iw = [hard.add(w, mw, sign * _PDG_W, _STATUS_INTERMEDIATE, it, False) for sign, w, mw, b, it in decays]
    for sign, w, mw, b, it in decays:
        hard.add(b, B_QUARK_MASS, sign * _PDG_B, _STATUS_OUTGOING, it, True)
    for (sign, w, mw, b, it), wi in zip(decays, iw):
        cs = rng.uniform(0.0, 1.0, n) < TTBAR_W_CS_FRACTION
        # W+ -> u dbar | c sbar ; W- -> d ubar | s cbar (up-type quark first for W+)
        up_pdg = np.where(cs, 4, 2) * sign
        down_pdg = -np.where(cs, 3, 1) * sign
        up_m = np.where(cs, C_QUARK_MASS, 0.0)
        down_m = np.where(cs, S_QUARK_MASS, 0.0)
        q1, q2 = _two_body(rng, w, mw, up_m, down_m)
        hard.add(q1, up_m, up_pdg, _STATUS_OUTGOING, wi, True)
        hard.add(q2, down_m, down_pdg, _STATUS_OUTGOING, wi, True)
    return hard


_HARD = {
    "resonant": _hard_resonant,
    "nonresonant": _hard_nonresonant,
    "qcd": _hard_qcd,
    "ttbar": _hard_ttbar,
}


# ---------------------------------------------------------------------------------------------
# nonresonant m_hh density and cross section
# ---------------------------------------------------------------------------------------------
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
    """Emulated sigma(gg -> hh) at 13 TeV in fb (before BR) vs kappa_lambda; exactly quadratic.

    One kappa-independent factor normalises the LO heavy-top integral to 31.05 fb at kappa = 1.
    The minimum lies at ``NONRESONANT_XSEC_MINIMUM`` (~2.2) where this approximation puts it.
    """
    i_bb, i_bt, i_tt = _nonresonant_integrals()
    k = np.asarray(kappa_lambda, dtype=np.float64)
    out = i_bb + 2.0 * k * i_bt + k * k * i_tt
    return float(out) if out.ndim == 0 else out


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


# ---------------------------------------------------------------------------------------------
# resonant / qcd cross sections
# ---------------------------------------------------------------------------------------------
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


def resonant_accepted_target(m_x):
    """The four-tag accepted sigma the resonant table is calibrated to (fb): a power law through
    PHYSICS.md's 3.64 fb (m_X = 500) and 0.081 fb (m_X = 1000)."""
    return C.RESONANT_XSEC_AFTER_FOUR_TAG[500.0] * (np.asarray(m_x, dtype=float) / 500.0) ** (-RESONANT_ACCEPTED_POWER)


def four_tag_mask(jets) -> np.ndarray:
    """PHYSICS.md four-tag cut: >= 4 b-tagged jets with pT > 40 and |eta| < 2.5 (per event)."""
    good = (jets.btag == 1) & (jets.pt > C.FOUR_TAG_PT_MIN) & (abs(jets.eta) < C.FOUR_TAG_ETA_MAX)
    return ak.to_numpy(ak.sum(good, axis=1) >= C.FOUR_TAG_N_BJETS)


def leading_bjets_mass(jets, n_jets: int = 4) -> np.ndarray:
    """Mass of the ``n_jets`` highest-pT b-tagged jets with pT > 40, |eta| < 2.5 (NaN if fewer)."""
    good = (jets.btag == 1) & (jets.pt > C.FOUR_TAG_PT_MIN) & (abs(jets.eta) < C.FOUR_TAG_ETA_MAX)
    sel = jets[good][:, :n_jets]
    px, py, pz, e = to_cartesian(*(ak.fill_none(ak.pad_none(sel[f], n_jets, clip=True), 0.0).to_numpy()
                                   for f in ("pt", "eta", "phi", "mass")))
    out = np.sqrt(np.clip(e.sum(1) ** 2 - px.sum(1) ** 2 - py.sum(1) ** 2 - pz.sum(1) ** 2, 0, None))
    return np.where(ak.to_numpy(ak.num(sel)) >= n_jets, out, np.nan)


def _xsec_fb(process, m_x, kappa_lambda):
    if process == "resonant":
        return resonant_xsec(m_x)
    if process == "nonresonant":
        return nonresonant_xsec(kappa_lambda) * C.BR_HH_4B
    if process == "qcd":
        return QCD_XSEC_FB
    return TTBAR_XSEC_FB


# ---------------------------------------------------------------------------------------------
# detector emulation
# ---------------------------------------------------------------------------------------------
def _isr(rng, n):
    """ISR/FSR partons as flat arrays (event index, position in event, pt, eta, phi, mass, pdgId)."""
    count = np.minimum(rng.poisson(ISR_MEAN, n), ISR_MAX)
    total = int(count.sum())
    evt = np.repeat(np.arange(n), count)
    local = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    pt = np.minimum(ISR_PT_MIN * (1.0 - rng.uniform(0.0, 1.0, total)) ** (-1.0 / ISR_PT_INDEX), ISR_PT_MAX)
    eta = np.clip(rng.normal(0.0, ISR_ETA_SPREAD, total), -ISR_ETA_MAX, ISR_ETA_MAX)
    phi = rng.uniform(-np.pi, np.pi, total)
    r = rng.uniform(0.0, 1.0, total)
    sign = np.where(rng.uniform(0.0, 1.0, total) < 0.5, 1, -1)
    is_b = r < ISR_FRACTION_B
    is_c = (r >= ISR_FRACTION_B) & (r < ISR_FRACTION_B + ISR_FRACTION_C)
    pdg = np.where(is_b, _PDG_B * sign, np.where(is_c, _PDG_C * sign, _PDG_G)).astype(np.int32)
    mass = np.where(is_b, B_QUARK_MASS, np.where(is_c, C_QUARK_MASS, 0.0))
    return count, evt, local, pt, eta, phi, mass, pdg


def _flavour(pdg):
    a = np.abs(pdg)
    return np.where(a == 5, 5, np.where(a == 4, 4, 0)).astype(np.int32)


def _ptetaphi(px, py, pz):
    pt = np.hypot(px, py)
    return pt, np.arcsinh(pz / pt), np.arctan2(py, px)


def _add_ptetaphim(a, b):
    """Sum of two (pt, eta, phi, m) four-vectors, returned as (pt, eta, phi, m)."""
    pa, pb = to_cartesian(*a), to_cartesian(*b)
    return from_cartesian(*(x + y for x, y in zip(pa, pb)))


def _listoffset(content: dict, counts) -> ak.Array:
    """Jagged record array from flat field arrays and per-event counts (no copies of content)."""
    offsets = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    record = ak.contents.RecordArray(
        [ak.contents.NumpyArray(np.ascontiguousarray(v)) for v in content.values()], list(content)
    )
    return ak.Array(ak.contents.ListOffsetArray(ak.index.Index64(offsets), record))


def _simulate(rng, hard: _Hard, working_point: str) -> dict:
    n = hard.n
    (hpx, hpy, hpz, _), hmass, hpdg, hstatus, hmother, hfinal = hard.columns()
    k = hpx.shape[1]
    hpt, heta, hphi = _ptetaphi(hpx, hpy, hpz)
    icount, ievt, ilocal, ipt, ieta, iphi, imass, ipdg = _isr(rng, n)

    # --- GenPart: the hard entries, then the ISR partons (status 43, mother -1)
    gcount = k + icount
    goffset = np.cumsum(gcount) - gcount
    hpos = (goffset[:, None] + np.arange(k)[None, :]).ravel()
    ipos = goffset[ievt] + k + ilocal
    total = int(gcount.sum())

    def scatter(hard_values, isr_values, dtype):
        out = np.empty(total, dtype=dtype)
        out[hpos] = np.ravel(hard_values)
        out[ipos] = isr_values
        return out

    genpart = _listoffset(
        {
            "pt": scatter(hpt, ipt, np.float32),
            "eta": scatter(heta, ieta, np.float32),
            "phi": scatter(hphi, iphi, np.float32),
            "mass": scatter(hmass, imass, np.float32),
            "pdgId": scatter(hpdg, ipdg, np.int32),
            "status": scatter(hstatus, _STATUS_ISR, np.int32),
            "genPartIdxMother": scatter(hmother, -1, np.int32),
        },
        gcount,
    )

    # --- partons that make jets: padded (n, m) arrays, hard final partons then ISR
    fin = np.nonzero(hfinal)[0]
    nf = fin.size
    m = nf + ISR_MAX
    pt = np.zeros((n, m))
    eta = np.zeros((n, m))
    phi = np.zeros((n, m))
    mass = np.zeros((n, m))
    flav = np.zeros((n, m), dtype=np.int32)
    alive = np.zeros((n, m), dtype=bool)
    pt[:, :nf], eta[:, :nf], phi[:, :nf], mass[:, :nf] = hpt[:, fin], heta[:, fin], hphi[:, fin], hmass[:, fin]
    flav[:, :nf] = _flavour(hpdg[:, fin])
    alive[:, :nf] = True
    slot = (ievt, nf + ilocal)
    pt[slot], eta[slot], phi[slot], mass[slot] = ipt, ieta, iphi, imass
    flav[slot] = _flavour(ipdg)
    alive[slot] = True

    # --- merging (anti-kT-like, R = 0.4): a parton within dR < 0.4 of an earlier surviving one
    # joins it; the merged jet takes the higher flavour (b > c > light)
    for j in range(1, m):
        if j < nf:  # hard partons: every row (slices, no copies)
            rows = None
            e_j, p_j, a_j = eta[:, : j + 1], phi[:, : j + 1], alive[:, :j]
        else:  # ISR slots: only the events that have this many ISR partons
            rows = np.flatnonzero(alive[:, j])
            if rows.size == 0:
                continue
            e_j, p_j, a_j = eta[rows, : j + 1], phi[rows, : j + 1], alive[rows, :j]
        deta = e_j[:, :j] - e_j[:, j : j + 1]
        dphi = delta_phi(p_j[:, :j], p_j[:, j : j + 1])
        cand = (deta * deta + dphi * dphi < MERGE_DR**2) & a_j
        has = cand.any(axis=1)
        if not has.any():
            continue
        rows = np.flatnonzero(has) if rows is None else rows[has]
        tgt = np.argmax(cand[has], axis=1)
        merged = _add_ptetaphim(
            (pt[rows, tgt], eta[rows, tgt], phi[rows, tgt], mass[rows, tgt]),
            (pt[rows, j], eta[rows, j], phi[rows, j], mass[rows, j]),
        )
        pt[rows, tgt], eta[rows, tgt], phi[rows, tgt], mass[rows, tgt] = merged
        flav[rows, tgt] = np.maximum(flav[rows, tgt], flav[rows, j])
        alive[rows, j] = False

    # --- from here on: flat arrays of the surviving partons (row-major: event by event)
    idx = np.flatnonzero(alive.ravel())
    evt = idx // m
    ptp, etap, phip, massp, flav = (a.ravel()[idx] for a in (pt, eta, phi, mass, flav))
    size = idx.size

    # neutrinos from semileptonic b/c decays carry a fraction of the parton momentum
    p_sl = np.where(flav == 5, SEMILEPTONIC_B, np.where(flav == 4, SEMILEPTONIC_C, 0.0))
    semileptonic = rng.uniform(0.0, 1.0, size) < p_sl
    f_nu = np.zeros(size)
    f_nu[semileptonic] = rng.beta(*NEUTRINO_FRACTION_BETA, int(semileptonic.sum()))

    # out-of-cone response < 1, angular and pT smearing
    pt_vis = (1.0 - f_nu) * ptp
    response = np.clip(RESPONSE_INF - RESPONSE_A / np.sqrt(np.maximum(pt_vis, 1.0)), RESPONSE_MIN, 1.0)
    pt_true = response * pt_vis
    mass_true = response * (1.0 - f_nu) * massp
    sig_ang = np.minimum(ANGLE_SMEAR / np.maximum(pt_true, 1.0), ANGLE_SMEAR_MAX)
    normals = rng.standard_normal((4, size))
    eta_j = etap + sig_ang * normals[0]
    phi_j = (phip + sig_ang * normals[1] + np.pi) % (2 * np.pi) - np.pi
    pt_j = np.maximum(pt_true + C.jet_resolution(pt_true) * normals[2], 0.05 * pt_true)
    shower = JET_MASS_FRACTION * np.exp(JET_MASS_SPREAD * normals[3])
    mass_j = np.sqrt(mass_true**2 + (shower * pt_true) ** 2) * (pt_j / pt_true)

    # MET: neutrinos + jet mismeasurement (true - measured) + jets beyond the calorimeter + noise
    in_calo = np.abs(eta_j) < JET_ETA_MAX
    lost = f_nu * ptp + np.where(in_calo, pt_true - pt_j, pt_true)
    cos_phi, sin_phi = np.cos(phi_j), np.sin(phi_j)
    noise = rng.standard_normal((2, n)) * MET_NOISE
    met_x = np.bincount(evt, weights=lost * cos_phi, minlength=n) + noise[0]
    met_y = np.bincount(evt, weights=lost * sin_phi, minlength=n) + noise[1]

    # reconstructed jets, pT-ordered within each event
    keep = np.flatnonzero(in_calo & (pt_j >= C.JET_PT_CONSIDERED))
    key = evt[keep] + 0.5 / (1.0 + pt_j[keep])  # evt is sorted; higher pT -> smaller key
    order = keep[np.argsort(key, kind="stable")]
    jet_count = np.bincount(evt[keep], minlength=n)
    jflav = flav[order]
    jeta = eta_j[order]
    wp = C.BTAG_WORKING_POINTS[working_point]
    p_tag = np.where(
        jflav == 5,
        wp["b_efficiency"],
        np.where(jflav == 4, 1.0 / wp["c_rejection"], 1.0 / wp["light_rejection"]),
    )
    p_tag = np.where(np.abs(jeta) < BTAG_ETA_MAX, p_tag, 0.0)
    btag = (rng.uniform(0.0, 1.0, order.size) < p_tag).astype(np.uint8)
    jets = _listoffset(
        {
            "pt": pt_j[order].astype(np.float32),
            "eta": jeta.astype(np.float32),
            "phi": phi_j[order].astype(np.float32),
            "mass": mass_j[order].astype(np.float32),
            "btag": btag,
            "hadronFlavour": jflav,
        },
        jet_count,
    )

    out = {"Jet": jets, "GenPart": genpart}
    out["MET_pt"] = np.hypot(met_x, met_y).astype(np.float32)
    out["MET_phi"] = np.arctan2(met_y, met_x).astype(np.float32)
    for name in ("Electron", "Muon"):
        out[name] = _leptons(rng, n)
    out["genWeight"] = np.ones(n, dtype=np.float32)
    return out


def _leptons(rng, n):
    """A small rate of isolated-looking leptons (mostly empty collections)."""
    count = np.minimum(rng.poisson(LEPTON_RATE, n), 2)
    total = int(count.sum())
    pt = LEPTON_PT_MIN + rng.exponential(LEPTON_PT_SLOPE, total)
    # pT-order the (at most two) leptons of an event
    evt = np.repeat(np.arange(n), count)
    pt = pt[np.argsort(evt + 0.5 / (1.0 + pt), kind="stable")]
    return _listoffset(
        {
            "pt": pt.astype(np.float32),
            "eta": rng.uniform(-2.5, 2.5, total).astype(np.float32),
            "phi": rng.uniform(-np.pi, np.pi, total).astype(np.float32),
            "charge": np.where(rng.uniform(0.0, 1.0, total) < 0.5, 1, -1).astype(np.int32),
        },
        count,
    )


# ---------------------------------------------------------------------------------------------
# public API
# ---------------------------------------------------------------------------------------------
def _check(process, n_events, m_x, kappa_lambda, working_point, chunk_size, seed=0):
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; choose one of {', '.join(PROCESSES)}")
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events < 1:
        raise ValueError(f"n_events must be a positive integer, got {n_events!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if process == "resonant":
        if m_x is None:
            raise ValueError("process 'resonant' needs m_x (the X mass in GeV, e.g. --m-x 500)")
        m_x = float(m_x)
        if not (2 * C.HIGGS_MASS + 1.0 < m_x <= 6000.0):
            raise ValueError(f"m_x must lie in ({2 * C.HIGGS_MASS + 1.0:g}, 6000] GeV, got {m_x:g}")
    elif m_x is not None:
        raise ValueError(f"m_x only applies to process 'resonant', not {process!r}")
    if process == "nonresonant":
        kappa_lambda = 1.0 if kappa_lambda is None else float(kappa_lambda)
        if not math.isfinite(kappa_lambda):
            raise ValueError(f"kappa_lambda must be finite, got {kappa_lambda!r}")
    elif kappa_lambda is not None:
        raise ValueError(f"kappa_lambda only applies to process 'nonresonant', not {process!r}")
    if working_point is None:
        working_point = C.NONRESONANT_WORKING_POINT if process == "nonresonant" else C.RESONANT_WORKING_POINT
    if working_point not in C.BTAG_WORKING_POINTS:
        raise ValueError(
            f"unknown b-tagging working point {working_point!r}; known: {', '.join(C.BTAG_WORKING_POINTS)}"
        )
    return m_x, kappa_lambda, working_point


def _compression():
    """LZ4 (ROOT-readable; ~10x faster to write than ZLIB, which would cap the generator at
    ~30k events/s); ZLIB(1) if the lz4/xxhash modules are missing."""
    try:
        import lz4.frame  # noqa: F401
        import xxhash  # noqa: F401
    except ImportError:
        return uproot.ZLIB(1)
    return uproot.LZ4(1)


def _chunk_rng(seed, process, m_x, kappa_lambda, index):
    param_bits = [int(np.float64(v).view(np.uint64)) if v is not None else 0 for v in (m_x, kappa_lambda)]
    entropy = [int(seed) & 0xFFFFFFFFFFFFFFFF, PROCESSES.index(process), *param_bits, index]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def iter_chunks(process, n_events, *, seed=0, m_x=None, kappa_lambda=None, working_point=None, chunk_size=200_000):
    """Yield the event content chunk by chunk (dicts of awkward/numpy arrays as written)."""
    m_x, kappa_lambda, working_point = _check(process, n_events, m_x, kappa_lambda, working_point, chunk_size, seed)
    for index, start in enumerate(range(0, int(n_events), int(chunk_size))):
        n = min(int(chunk_size), int(n_events) - start)
        rng = _chunk_rng(seed, process, m_x, kappa_lambda, index)
        hard = _HARD[process](rng, n, m_x, kappa_lambda)
        yield _simulate(rng, hard, working_point)


def generate_arrays(process, n_events, *, seed=0, m_x=None, kappa_lambda=None, working_point=None, chunk_size=200_000):
    """The same events ``generate`` writes, in memory: a dict of awkward arrays
    (``Jet``, ``GenPart``, ``Electron``, ``Muon`` jagged records) and numpy arrays (``MET_pt``,
    ``MET_phi``, ``genWeight``)."""
    chunks = list(
        iter_chunks(process, n_events, seed=seed, m_x=m_x, kappa_lambda=kappa_lambda,
                    working_point=working_point, chunk_size=chunk_size)
    )
    out = {}
    for key, first in chunks[0].items():
        parts = [c[key] for c in chunks]
        if isinstance(first, ak.Array):
            out[key] = parts[0] if len(parts) == 1 else ak.concatenate(parts)
        else:
            out[key] = np.concatenate(parts)
    return out


def generate(
    process: str,
    n_events: int,
    path,
    *,
    seed: int = 0,
    m_x: float | None = None,
    kappa_lambda: float | None = None,
    working_point: str | None = None,
    chunk_size: int = 200_000,
) -> dict:
    """Write ``n_events`` emulated events of ``process`` to ``path`` (tree ``Events``, FORMATS.md
    layout 2) and ``<path>.json``; return the metadata dict (see the module docstring)."""
    m_x_c, kappa_c, wp = _check(process, n_events, m_x, kappa_lambda, working_point, chunk_size, seed)
    xsec = float(_xsec_fb(process, m_x_c, kappa_c))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = iter_chunks(process, n_events, seed=seed, m_x=m_x, kappa_lambda=kappa_lambda,
                         working_point=working_point, chunk_size=chunk_size)
    with uproot.recreate(path, compression=_compression()) as fout:
        tree = None
        for chunk in chunks:
            if tree is None:
                tree = fout.mktree(TREE_NAME, chunk, title="hhcoffea emulated events")
            else:
                tree.extend(chunk)
    meta = {
        "process": process,
        "file": str(path),
        "tree": TREE_NAME,
        "n_generated": int(n_events),
        "xsec_fb": xsec,
        "m_x": m_x_c,
        "kappa_lambda": kappa_c,
        "working_point": wp,
        "seed": int(seed),
        "sqrt_s": SQRT_S,
        "chunk_size": int(chunk_size),
        "branching_ratio": C.BR_HH_4B if process == "nonresonant" else None,
        "generator": "hhcoffea.generate (parametric emulation, not a Monte Carlo generator)",
    }
    Path(str(path) + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``hhcoffea generate``."""
    parser.add_argument("process", choices=PROCESSES, help="which process to emulate")
    parser.add_argument("-n", "--n-events", type=int, required=True, help="number of events")
    parser.add_argument("-o", "--output", required=True, help="output ROOT file (metadata in <output>.json)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--m-x", type=float, default=None, help="resonant: X mass in GeV")
    parser.add_argument("--kappa-lambda", type=float, default=None, help="nonresonant: kappa_lambda (default 1)")
    parser.add_argument(
        "--working-point",
        choices=tuple(C.BTAG_WORKING_POINTS),
        default=None,
        help=f"b-tagging working point (default {C.RESONANT_WORKING_POINT}; {C.NONRESONANT_WORKING_POINT} for nonresonant)",
    )
    parser.add_argument("--chunk-size", type=int, default=200_000, help="events generated and written per chunk")


def main(args: argparse.Namespace) -> int:
    """``hhcoffea generate``: write one sample and print its metadata."""
    meta = generate(
        args.process,
        args.n_events,
        args.output,
        seed=args.seed,
        m_x=args.m_x,
        kappa_lambda=args.kappa_lambda,
        working_point=args.working_point,
        chunk_size=args.chunk_size,
    )
    print(
        f"wrote {meta['n_generated']:,} {meta['process']} events to {meta['file']} "
        f"(xsec x BR = {meta['xsec_fb']:.6g} fb, working point {meta['working_point']}; metadata in {meta['file']}.json)"
    )
    return 0


#: kappa_lambda at the minimum of nonresonant_xsec: -c1 / (2 c2) of the emulated LO integrals
#: (c0, c1, c2) = (57.73, -34.97, 8.290) fb; the NNLO parametrisation has it at 2.28
NONRESONANT_XSEC_MINIMUM = 2.109
