"""Delphes-like detector emulation: ISR/FSR partons, jet clustering, losses, resolution,
b-tagging, MET and leptons. Calibrated against showered samples of the same hard processes
(``shower``, Pythia 8 + FastJet; ``benchmarks/fidelity.py``), not against the paper directly.

Every process gets extra ISR/UE partons (``_isr``: underlying-event-like ones with a
negative-binomial count and a falling pT, plus initial-state shower emissions whose number and
pT grow with the hard system's pT), one more that balances the hard system's pT
(``_with_recoil``; colour-singlet X and hh systems get the hard recoil of a shower that runs to
the kinematic limit, ``processes``), mostly light, c and b from gluon splitting; all recorded in
GenPart with status 43 and mother -1. Every hard final parton radiates one gluon with a fraction
z of its pT and a transverse momentum kT relative to it whose distribution does not depend on
the parton's pT (``_final_state_radiation``): the emission angle kT / (z (1 - z) pT) is wide for
soft partons and collinear for hard ones. So a soft b quark loses energy out of its cone and its
jet's axis leaves the quark's cone, falls below the pT thresholds more often and makes extra
jets, while a hard one keeps its energy inside the cone, as in a shower (showered b quarks: a
jet within dR < 0.1 for 55% at 45 GeV, 98% above 250 GeV; the emulation 58% and 95%).

Partons closer than dR < 0.4 are merged into one jet (four-vector sum; flavour b > c > light):
overlapping jets. Each jet: semileptonic b/c decays put a fraction of the parton four-vector
into a neutrino (-> MET); a response r(pT) = ``RESPONSE_INF`` - ``RESPONSE_A``/sqrt(pT) scales
the rest (hadronisation; ~0.92 at 60 GeV); a jet's mass adds a shower term (``JET_MASS_OFFSET``
(+) ``JET_MASS_FRACTION`` pT, falling from ~17% of pT at 50 GeV to ~9% at 300 GeV) to the
parton mass; ``measure_jets`` smears eta/phi by ``ANGLE_SMEAR``/pT and pT with
``constants.jet_resolution`` (5.2% (+) 150%/sqrt(pT)), the step shared with the showered
samples; jets need pT >= 20 GeV and |eta| < 4.5 and are pT-ordered. Tuned (EMULATION_VERSION 3)
against showered non-resonant hh at kappa_lambda = 1, 5 and -5 and resonant m_X = 500 (DL1r_77
/ MV2c10_70, four-tag events; ``benchmarks/fidelity.py``): per b quark, the jet's distance and
response against the quark's pT; per event, the four-tag efficiency, fully matched fraction, jet
multiplicity over all jets >= 20 GeV, non-Higgs tagged jets among the four leading tags,
truth-paired m_h1/m_h2 and min-dR pairing efficiency, all within a few percent of the shower.

b-tagging: per jet truth flavour at the working point (constants.BTAG_WORKING_POINTS):
P = b_efficiency (flavour 5), 1/c_rejection (4), 1/light_rejection (otherwise), and only inside
the tracker, |eta| < ``BTAG_ETA_MAX`` (2.5; no tags beyond, as in the Delphes cards). ``Jet_btag``
is a bitmask, as Delphes writes with one BTagging module per ``BitNumber``: bit 0 is the sample's
working point, and every working point of the table with a bit (MV2c10_70: bit 1, DL1r_77: bit 2;
``hhcoffea/corrections/btagging/data/working_points.json``) has its own, so one sample serves
every working point.
MET = neutrinos + jet mismeasurement + jets beyond |eta| 4.5 + Gaussian noise.
Electron/Muon collections exist and are mostly empty (``LEPTON_RATE`` per event).
"""

from __future__ import annotations

import functools

import awkward as ak
import numpy as np

from .. import constants as C
from ..columnar.kinematics import delta_phi, from_cartesian, to_cartesian
from .processes import B_QUARK_MASS, C_QUARK_MASS, PDG_B, PDG_C, PDG_G, STATUS_ISR, HardProcess

__all__ = ["BTAG_ETA_MAX", "measure_jets", "simulate"]

# ---------------------------------------------------------------------------------------------
# Emulation tuning (not PHYSICS.md; the jet resolution is constants.jet_resolution)
# ---------------------------------------------------------------------------------------------
# ISR/UE partons (_isr): underlying-event-like ones, a negative binomial of mean ISR_MEAN, and the
# initial-state shower's, ISR_PER_LOG per unit of ln(pT_system / ISR_PT_MIN); plus the parton that
# balances the system's pT (_with_recoil). 4/5/>=6 jets as in showered samples
ISR_MEAN = 1.0
ISR_ACTIVITY_SHAPE = 2.0
ISR_PER_LOG = 0.65
ISR_MAX = 12
ISR_PT_MIN = 15.0
ISR_PT_INDEX = 2.2  # pdf ~ pT^-(1 + index)
ISR_PT_MAX = 1500.0
ISR_ETA_SPREAD = 2.0
ISR_ETA_MAX = 5.0  # clip (keeps the parton energies physical)
ISR_FRACTION_C = 0.14  # c and b from the shower (g -> cc, bb): the fake fourth tags (with the
ISR_FRACTION_B = 0.04  # harder ISR, as many non-Higgs tagged jets in four-tag events as showered)
# the ISR parton that balances the hard system's pT (_with_recoil): c / b fractions
RECOIL_FRACTION_C = 0.0
RECOIL_FRACTION_B = 0.0

# FSR off the hard final partons (see _final_state_radiation); tuned against showered samples.
# The emission's transverse momentum kT relative to the parton has a pT-independent (Weibull)
# distribution, so its angle theta = kT / (z (1 - z) pT) is wide for soft partons and collinear
# for hard ones (as in a kT-ordered shower).
FSR_PROBABILITY = 1.0
FSR_Z_MIN, FSR_Z_MAX = 0.05, 0.7
FSR_KT_SCALE = 4.5  # GeV: P(kT > k) = exp(-(k / FSR_KT_SCALE)^FSR_KT_SHAPE)
FSR_KT_SHAPE = 0.6
FSR_THETA_MAX = 2.5  # wider emissions are put at this angle
FSR_EDGE = 0.15  # width of the cone's edge, over which a gluon's hadrons are shared (see there)

# detector
MERGE_DR = 0.4  # anti-kT R = 0.4
RESPONSE_INF = 1.0  # r(pT) = RESPONSE_INF - RESPONSE_A / sqrt(pT / GeV): 0.92 at 60 GeV, 0.97 at
RESPONSE_A = 0.6  # 400 GeV (hadronisation; the FSR emissions carry the out-of-cone loss)
RESPONSE_MIN = 0.5
SEMILEPTONIC_B = 0.30  # probability that a b jet loses a neutrino (b -> l nu X, and b -> c -> l nu)
SEMILEPTONIC_C = 0.10
NEUTRINO_FRACTION_BETA = (1.5, 6.0)  # fraction of the parton momentum carried by the neutrino (mean 0.2)
ANGLE_SMEAR = 1.0  # GeV: sigma(eta) = sigma(phi) = min(ANGLE_SMEAR / pT, ANGLE_SMEAR_MAX)
ANGLE_SMEAR_MAX = 0.05
# shower mass: m_jet^2 = m^2 + s^2 (JET_MASS_OFFSET^2 + (JET_MASS_FRACTION pT)^2), s ~ lognormal
# (median 1): m_jet / pT falls with pT (showered b jets: 0.17 at 50 GeV, 0.10 at 300 GeV)
JET_MASS_FRACTION = 0.07
JET_MASS_OFFSET = 5.0  # GeV
JET_MASS_SPREAD = 0.35
JET_ETA_MAX = 4.5
BTAG_ETA_MAX = C.FOUR_TAG_ETA_MAX  # b-tagging only inside the tracker
MET_NOISE = 5.0  # GeV per component
LEPTON_RATE = 0.02  # mean electrons (and muons) per event
LEPTON_PT_MIN, LEPTON_PT_SLOPE = 10.0, 15.0


def _isr(rng, n, recoil_pt):
    """ISR/UE partons as flat arrays (event index, position in event, pt, eta, phi, mass, pdgId).

    Two kinds per event, the underlying-event-like ones first: a negative-binomial count (mean
    ``ISR_MEAN``; a Poisson whose mean fluctuates with the event's activity, Gamma of shape
    ``ISR_ACTIVITY_SHAPE``) with a steeply falling (Pareto) pT above ``ISR_PT_MIN``; then the
    initial-state shower's emissions below the hard system's ``recoil_pt`` = Q: a Poisson count of
    mean ``ISR_PER_LOG`` ln(Q / ``ISR_PT_MIN``), pT log-uniform in [``ISR_PT_MIN``, Q], so a harder
    shower brings more and harder jets (showered hh: 1.0 extra jets below pT(hh) = 30 GeV, 3.3
    above 160 GeV)."""
    activity = rng.gamma(ISR_ACTIVITY_SHAPE, 1.0 / ISR_ACTIVITY_SHAPE, n)
    n_ue = rng.poisson(ISR_MEAN * activity)
    log_q = np.log(np.maximum(recoil_pt, ISR_PT_MIN) / ISR_PT_MIN)
    count = np.minimum(n_ue + rng.poisson(ISR_PER_LOG * log_q), ISR_MAX)
    total = int(count.sum())
    evt = np.repeat(np.arange(n), count)
    local = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    u = rng.uniform(0.0, 1.0, total)
    pt = np.where(local < n_ue[evt], np.minimum(ISR_PT_MIN * (1.0 - u) ** (-1.0 / ISR_PT_INDEX), ISR_PT_MAX),
                  ISR_PT_MIN * np.exp(u * log_q[evt]))
    eta = np.clip(rng.normal(0.0, ISR_ETA_SPREAD, total), -ISR_ETA_MAX, ISR_ETA_MAX)
    phi = rng.uniform(-np.pi, np.pi, total)
    pdg, mass = _isr_flavour(rng, total, ISR_FRACTION_C, ISR_FRACTION_B)
    return count, evt, local, pt, eta, phi, mass, pdg


def _isr_flavour(rng, size, fraction_c, fraction_b):
    """pdgId and mass of ISR partons: gluons, c and b (either sign) in the given fractions."""
    r = rng.uniform(0.0, 1.0, size)
    sign = np.where(rng.uniform(0.0, 1.0, size) < 0.5, 1, -1)
    is_b = r < fraction_b
    is_c = (r >= fraction_b) & (r < fraction_b + fraction_c)
    pdg = np.where(is_b, PDG_B * sign, np.where(is_c, PDG_C * sign, PDG_G)).astype(np.int32)
    mass = np.where(is_b, B_QUARK_MASS, np.where(is_c, C_QUARK_MASS, 0.0))
    return pdg, mass


def _with_recoil(rng, sx, sy, isr):
    """``isr`` (as :func:`_isr` returns it) with one more parton per event, last in its event: the
    initial-state emission that balances the hard system's transverse momentum (sx, sy), so a hard
    system comes with a hard ISR jet (Gaussian eta as the other ISR partons; a gluon, or c / b in
    ``RECOIL_FRACTION_C`` / ``RECOIL_FRACTION_B``: a hard gluon jet rarely holds heavy flavour)."""
    count, evt, local, pt, eta, phi, mass, pdg = isr
    n = count.size
    r_eta = np.clip(rng.normal(0.0, ISR_ETA_SPREAD, n), -ISR_ETA_MAX, ISR_ETA_MAX)
    r_pdg, r_mass = _isr_flavour(rng, n, RECOIL_FRACTION_C, RECOIL_FRACTION_B)
    new_count = count + 1
    start = np.cumsum(new_count) - new_count
    old_pos, new_pos = start[evt] + local, start + count
    out = []
    for old, new in ((evt, np.arange(n)), (local, count), (pt, np.hypot(sx, sy)), (eta, r_eta),
                     (phi, np.arctan2(-sy, -sx)), (mass, r_mass), (pdg, r_pdg)):
        a = np.empty(old.size + n, dtype=np.result_type(old, new))
        a[old_pos], a[new_pos] = old, new
        out.append(a)
    return (new_count, *out)


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


def _final_state_radiation(rng, pt, eta, phi, alive, nf, first_slot):
    """Hard final partons radiate: with probability ``FSR_PROBABILITY`` one gluon takes a fraction
    z (log-uniform in [``FSR_Z_MIN``, ``FSR_Z_MAX``]) of the parton's pT with a transverse momentum
    kT relative to it (Weibull, scale ``FSR_KT_SCALE``, shape ``FSR_KT_SHAPE``, the same for every
    parton pT), i.e. at an opening angle theta = kT / (z (1 - z) pT) (at most ``FSR_THETA_MAX``)
    to the recoiling parton, which keeps 1 - z: a soft b quark radiates at wide angles (energy
    out of the cone, its jet's axis off the quark), a hard one inside its cone. Their pT-weighted
    axis stays the parton's (small-angle recoil: gluon at (1 - z) theta, parton at z theta on the
    other side). Written into slots
    ``first_slot + j`` (light flavour). The merging step puts emissions within dR < 0.4 back
    into one jet, so only wide ones change anything, as in a shower: a b jet that loses energy
    and whose axis leaves the quark's cone, an extra jet, a quark with two jets in its cone."""
    n, m = pt.shape
    u = [rng.uniform(0.0, 1.0, (n, nf)) for _ in range(4)]  # = one (4, n, nf) draw, in pieces
    emits = u[0] < FSR_PROBABILITY
    alive[:, first_slot : first_slot + nf] = emits
    # only the emitting partons: the slots of the others stay empty (dead, never read)
    e = np.flatnonzero(emits)
    row, q = np.divmod(e, nf)
    parton, gluon = row * m + q, row * m + first_slot + q
    z = FSR_Z_MIN * (FSR_Z_MAX / FSR_Z_MIN) ** u[1].reshape(-1)[e]
    kt = FSR_KT_SCALE * (-np.log1p(-u[2].reshape(-1)[e])) ** (1.0 / FSR_KT_SHAPE)
    u3 = u[3].reshape(-1)[e]
    c, s = np.cos(2.0 * np.pi * u3), np.sin(2.0 * np.pi * u3)
    pt_f, eta_f, phi_f = pt.reshape(-1), eta.reshape(-1), phi.reshape(-1)
    pt0, e0, p0 = pt_f[parton], eta_f[parton], phi_f[parton]
    theta = np.minimum(kt / (z * (1.0 - z) * pt0), FSR_THETA_MAX)
    # a gluon just outside the cone leaves part of its hadrons to the harder jet (anti-kT): the
    # separate part falls from all at theta = R + FSR_EDGE to none at theta = R
    z = z * np.clip((theta - MERGE_DR) / FSR_EDGE, 0.0, 1.0)
    pt_f[gluon] = z * pt0
    eta_f[gluon] = np.clip(e0 + (1.0 - z) * theta * c, -ISR_ETA_MAX, ISR_ETA_MAX)
    phi_f[gluon] = (p0 + (1.0 - z) * theta * s + np.pi) % (2 * np.pi) - np.pi
    pt_f[parton] = (1.0 - z) * pt0
    eta_f[parton] = np.clip(e0 - z * theta * c, -ISR_ETA_MAX, ISR_ETA_MAX)
    phi_f[parton] = (p0 - z * theta * s + np.pi) % (2 * np.pi) - np.pi


def _merge_partons(pt, eta, phi, mass, flav, alive, nf):
    """Merging in place (anti-kT-like, R = ``MERGE_DR``), slot by slot: the parton in slot j joins
    the first earlier surviving parton within dR < R (four-vector sum, higher flavour). The dR
    test is the one of ``columnar.kinematics`` (deta^2 + delta_phi^2 < R^2) on the same float64
    values; delta_phi (a float modulo, the costly part) is only evaluated where deta^2 < R^2
    (which every pair with deta^2 + dphi^2 < R^2 satisfies: rounding is monotonic) and where
    phi_i - phi_j lies within R (+ 1e-6, far above rounding) of a multiple of 2 pi, so the merges
    are exactly those of the test on every pair."""
    n, m = pt.shape
    r2 = MERGE_DR**2
    pt_f, eta_f, phi_f, mass_f, flav_f, alive_f = (a.reshape(-1) for a in (pt, eta, phi, mass, flav, alive))
    # work buffers reused by every slot; the per-pair ones sized for the largest slot (slot j is
    # only changed at its own step, so its row count is known now)
    rows_per_slot = np.count_nonzero(alive, axis=0)
    rows_per_slot[:nf] = n
    need = int(max((rows_per_slot[j] * j for j in range(1, m)), default=0))
    eta_rows, alive_rows = np.empty_like(eta), np.empty_like(alive)
    deta_buf, sq_buf, near_buf = np.empty(need), np.empty(need), np.empty(need, dtype=bool)
    for j in range(1, m):
        if j < nf:  # hard partons: every row (slices, no copies)
            rows = None
            e_i, a_i, e_j = eta[:, :j], alive[:, :j], eta[:, j : j + 1]
        else:  # ISR and FSR slots: only the events that have a parton there
            rows = np.flatnonzero(alive[:, j])
            if rows.size == 0:
                continue
            e_rows = np.take(eta, rows, axis=0, out=eta_rows[: rows.size])
            a_rows = np.take(alive, rows, axis=0, out=alive_rows[: rows.size])
            e_i, a_i, e_j = e_rows[:, :j], a_rows[:, :j], e_rows[:, j : j + 1]
        shape = e_i.shape
        size = shape[0] * shape[1]
        deta = np.subtract(e_i, e_j, out=deta_buf[:size].reshape(shape))
        near = np.multiply(deta, deta, out=sq_buf[:size].reshape(shape))
        near = np.less(near, r2, out=near_buf[:size].reshape(shape))
        near &= a_i
        flat = np.flatnonzero(near)  # row-major: the earlier slots of a row in order
        if flat.size == 0:
            continue
        r, i = np.divmod(flat, j)
        ev = r if rows is None else rows[r]
        # |phi_i - phi_j| within R (+ 1e-6) of a multiple of 2 pi: also necessary, and cheaper than
        # the modulo of delta_phi, which is then taken where it can still pass
        ev_m = ev * m
        phi_i, phi_j = phi_f[ev_m + i], phi_f[ev_m + j]
        d = np.abs(phi_i - phi_j)
        d -= np.rint(d * (0.5 / np.pi)) * (2.0 * np.pi)
        close = np.abs(d) < MERGE_DR + 1e-6
        r, ev, i, phi_i, phi_j = r[close], ev[close], i[close], phi_i[close], phi_j[close]
        dphi = delta_phi(phi_i, phi_j)
        de = deta.reshape(-1)[flat[close]]
        within = de * de + dphi * dphi < r2
        r, ev, i = r[within], ev[within], i[within]
        if r.size == 0:
            continue
        first = np.ones(r.size, dtype=bool)  # the first candidate of each row is the target
        first[1:] = r[1:] != r[:-1]
        ev, tgt = ev[first], i[first]
        t_flat, j_flat = ev * m + tgt, ev * m + j
        merged = _add_ptetaphim(
            (pt_f[t_flat], eta_f[t_flat], phi_f[t_flat], mass_f[t_flat]),
            (pt_f[j_flat], eta_f[j_flat], phi_f[j_flat], mass_f[j_flat]),
        )
        pt_f[t_flat], eta_f[t_flat], phi_f[t_flat], mass_f[t_flat] = merged
        flav_f[t_flat] = np.maximum(flav_f[t_flat], flav_f[j_flat])
        alive_f[j_flat] = False


def measure_jets(rng, pt, eta, phi, mass):
    """Delphes-like measurement of flat particle-level jets (the fast emulation and the showered
    samples share it): eta and phi smeared by ``ANGLE_SMEAR``/pT, pT by
    ``constants.jet_resolution`` (5.2% (+) 150%/sqrt(pT)), the mass scaled with the pT.
    Returns the measured (pt, eta, phi, mass)."""
    sig_ang = np.minimum(ANGLE_SMEAR / np.maximum(pt, 1.0), ANGLE_SMEAR_MAX)
    normals = [rng.standard_normal(np.size(pt)) for _ in range(3)]  # = one (3, size) draw, in pieces
    eta_j = eta + sig_ang * normals[0]
    phi_j = (phi + sig_ang * normals[1] + np.pi) % (2 * np.pi) - np.pi
    pt_j = np.maximum(pt + C.jet_resolution(pt) * normals[2], 0.05 * pt)
    return pt_j, eta_j, phi_j, mass * (pt_j / np.maximum(pt, 1e-9))


def simulate(rng, hard: HardProcess, working_point: str) -> dict:
    """One chunk of events as written: ``hard`` plus ISR/FSR through the detector, at the b-tagging
    ``working_point``; a dict of awkward records (Jet, GenPart, Electron, Muon) and numpy arrays
    (MET_pt, MET_phi, genWeight). Draws from ``rng`` in a fixed order (determinism)."""
    n = hard.n
    (hpx, hpy, hpz, _), hmass, hpdg, hstatus, hmother, hfinal = hard.columns()
    k = hpx.shape[1]
    hpt, heta, hphi = _ptetaphi(hpx, hpy, hpz)
    fin = np.nonzero(hfinal)[0]
    sx, sy = hpx[:, fin].sum(axis=1), hpy[:, fin].sum(axis=1)
    isr = _with_recoil(rng, sx, sy, _isr(rng, n, np.hypot(sx, sy)))
    icount, ievt, ilocal, ipt, ieta, iphi, imass, ipdg = isr

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
            "status": scatter(hstatus, STATUS_ISR, np.int32),
            "genPartIdxMother": scatter(hmother, -1, np.int32),
        },
        gcount,
    )

    # --- partons that make jets: padded (n, m) arrays, hard final partons, ISR (with the recoil
    # parton), then FSR
    nf = fin.size
    isr_slots = ISR_MAX + 1
    m = nf + isr_slots + nf
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
    _final_state_radiation(rng, pt, eta, phi, alive, nf, nf + isr_slots)

    # --- merging (anti-kT-like, R = 0.4): a parton within dR < 0.4 of an earlier surviving one
    # joins it; the merged jet takes the higher flavour (b > c > light)
    _merge_partons(pt, eta, phi, mass, flav, alive, nf)

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
    shower = np.exp(JET_MASS_SPREAD * rng.standard_normal(size))
    mass_shower = np.sqrt(mass_true**2 + shower**2 * (JET_MASS_OFFSET**2 + (JET_MASS_FRACTION * pt_true) ** 2))
    pt_j, eta_j, phi_j, mass_j = measure_jets(rng, pt_true, etap, phip, mass_shower)

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
    btag = _btag_bits(rng.uniform(0.0, 1.0, order.size), jflav, jeta, working_point)
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


@functools.lru_cache(maxsize=1)
def _tag_bits() -> tuple:
    from ..corrections.btagging.working_points import emulation_bits, load_working_points

    table = load_working_points()
    return tuple((table[name], bit) for name, bit in sorted(emulation_bits().items(), key=lambda x: x[1]))


def _btag_bits(u, flavour, eta, working_point: str) -> np.ndarray:
    """The ``btag`` bitmask: bit 0 at the sample's ``working_point``, and one bit per working point
    of the table that has one (``emulation_bits``). One uniform ``u`` per jet serves every bit, so
    the sample's bit 0 is the draw it always was and tighter working points tag a subset of the
    looser ones (as thresholds on one discriminant would)."""
    central = np.abs(eta) < BTAG_ETA_MAX
    wp = C.BTAG_WORKING_POINTS[working_point]
    p_own = np.where(flavour == 5, wp["b_efficiency"],
                     np.where(flavour == 4, 1.0 / wp["c_rejection"], 1.0 / wp["light_rejection"]))
    btag = ((u < p_own) & central).astype(np.uint8)
    for table_wp, bit in _tag_bits():
        btag |= ((u < table_wp.efficiency(flavour)) & central).astype(np.uint8) << np.uint8(bit)
    return btag


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
