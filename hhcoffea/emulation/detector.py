"""Delphes-like detector emulation: ISR/FSR partons, jet clustering, losses, resolution,
b-tagging, MET and leptons.

Every process gets extra ISR/FSR partons (Poisson count, falling pT, mostly light, some c and
g->bb), recorded in GenPart with status 43 and mother -1.

Partons closer than dR < 0.4 are merged into one jet (four-vector sum; flavour b > c > light).
Each jet: semileptonic b/c decays put a fraction of the parton four-vector into a neutrino
(-> MET); an out-of-cone response r(pT) = ``RESPONSE_INF`` - ``RESPONSE_A``/sqrt(pT) < 1 scales
the rest; eta/phi are smeared by ``ANGLE_SMEAR``/pT; pT is smeared with
``constants.jet_resolution`` (5.2% (+) 150%/sqrt(pT)); jets need pT >= 20 GeV and |eta| < 4.5
and are pT-ordered; a jet's mass adds a shower term (~9% of pT) to the parton mass. The
response (0.91 at 60 GeV, 0.92 at 150 GeV) was tuned so that, for resonant m_X = 500 with truth
pairing (candidates ordered by scalar-sum jet pT; four matched jets with pT > 40, |eta| < 2.5),
m_h1 peaks at ~121.5 GeV (median 122.5) and m_h2 at ~109.5 GeV (median 109) like the reference
analysis' 120/110 (at m_X = 1000: medians 125/113).

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

__all__ = ["BTAG_ETA_MAX", "simulate"]

# ---------------------------------------------------------------------------------------------
# Emulation tuning (not PHYSICS.md; the jet resolution is constants.jet_resolution)
# ---------------------------------------------------------------------------------------------
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
    pdg = np.where(is_b, PDG_B * sign, np.where(is_c, PDG_C * sign, PDG_G)).astype(np.int32)
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


def simulate(rng, hard: HardProcess, working_point: str) -> dict:
    """One chunk of events as written: ``hard`` plus ISR/FSR through the detector, at the b-tagging
    ``working_point``; a dict of awkward records (Jet, GenPart, Electron, Muon) and numpy arrays
    (MET_pt, MET_phi, genWeight). Draws from ``rng`` in a fixed order (determinism)."""
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
            "status": scatter(hstatus, STATUS_ISR, np.int32),
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
