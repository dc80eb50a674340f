"""Tests of the sample emulation (hhcoffea.emulation): format, truth, calibration, determinism."""

from __future__ import annotations

import argparse
import json
import math

import awkward as ak
import numpy as np
import pytest
import uproot

from hhcoffea import constants as C
from hhcoffea.cli import generate as emulation_cli
from hhcoffea.columnar.kinematics import delta_phi, invariant_mass, to_cartesian
from hhcoffea.emulation import calibration, detector, generate, generate_arrays, processes, xsec

EXPECTED_BRANCHES = {
    "nJet": "int32",
    "Jet_pt": "float32",
    "Jet_eta": "float32",
    "Jet_phi": "float32",
    "Jet_mass": "float32",
    "Jet_btag": "uint8",
    "Jet_hadronFlavour": "int32",
    "nGenPart": "int32",
    "GenPart_pt": "float32",
    "GenPart_eta": "float32",
    "GenPart_phi": "float32",
    "GenPart_mass": "float32",
    "GenPart_pdgId": "int32",
    "GenPart_status": "int32",
    "GenPart_genPartIdxMother": "int32",
    "MET_pt": "float32",
    "MET_phi": "float32",
    "nElectron": "int32",
    "Electron_pt": "float32",
    "Electron_eta": "float32",
    "Electron_phi": "float32",
    "Electron_charge": "int32",
    "nMuon": "int32",
    "Muon_pt": "float32",
    "Muon_eta": "float32",
    "Muon_phi": "float32",
    "Muon_charge": "int32",
    "genWeight": "float32",
}


def _read(path):
    with uproot.open(path) as f:
        return f["Events"].arrays(library="ak")


@pytest.fixture(scope="module")
def resonant_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("gen") / "res500.root"
    meta = generate("resonant", 20_000, path, seed=11, m_x=500.0, chunk_size=7_000)
    return path, meta, _read(path)


@pytest.fixture(scope="module")
def ttbar_events():
    return generate_arrays("ttbar", 12_000, seed=4)


@pytest.fixture(scope="module")
def qcd_events():
    return generate_arrays("qcd", 30_000, seed=6)


# --- format ----------------------------------------------------------------------------------
def test_branches_and_dtypes(resonant_file):
    path, meta, _ = resonant_file
    with uproot.open(path) as f:
        tree = f["Events"]
        assert tree.classname.startswith("TTree")
        assert tree.num_entries == 20_000
        assert set(tree.keys()) == set(EXPECTED_BRANCHES)
        arrays = tree.arrays(library="np")
    for name, dtype in EXPECTED_BRANCHES.items():
        values = arrays[name]
        if values.dtype == object:  # jagged: one numpy array per event
            values = np.concatenate(list(values[:50]))
        assert values.dtype.newbyteorder("=") == np.dtype(dtype), name


def test_jets_and_counters(resonant_file):
    _, _, ev = resonant_file
    for coll in ("Jet", "GenPart", "Electron", "Muon"):
        assert np.array_equal(ak.to_numpy(ev[f"n{coll}"]), ak.to_numpy(ak.num(ev[f"{coll}_pt"])))
    pt = ev.Jet_pt
    assert ak.all(pt >= C.JET_PT_CONSIDERED)
    assert ak.all(abs(ev.Jet_eta) < 4.5)
    assert ak.all(pt[:, :-1] >= pt[:, 1:])  # pT-ordered
    assert set(np.unique(ak.to_numpy(ak.flatten(ev.Jet_hadronFlavour)))) <= {0, 4, 5}
    assert ak.all(ev.genWeight == 1.0)
    assert ak.all(ev.MET_pt >= 0)
    # leptons: rare but present
    assert 0 < ak.sum(ev.nElectron) < 0.1 * len(ev)
    assert 0 < ak.sum(ev.nMuon) < 0.1 * len(ev)


def test_metadata_sidecar(resonant_file):
    path, meta, _ = resonant_file
    sidecar = json.loads(open(str(path) + ".json").read())
    assert sidecar == meta
    for key in ("process", "file", "n_generated", "xsec_fb", "m_x", "kappa_lambda", "working_point", "seed", "sqrt_s"):
        assert key in meta
    assert meta["process"] == "resonant" and meta["n_generated"] == 20_000 and meta["seed"] == 11
    assert meta["m_x"] == 500.0 and meta["kappa_lambda"] is None
    assert meta["working_point"] == "MV2c10_70"
    assert meta["xsec_fb"] == pytest.approx(calibration.RESONANT_XSEC_TABLE[500.0])


# --- determinism -----------------------------------------------------------------------------
def test_deterministic_for_a_seed(tmp_path):
    a = generate("nonresonant", 3_000, tmp_path / "a.root", seed=3, kappa_lambda=5.0, chunk_size=1_000)
    b = generate("nonresonant", 3_000, tmp_path / "b.root", seed=3, kappa_lambda=5.0, chunk_size=1_000)
    generate("nonresonant", 3_000, tmp_path / "c.root", seed=4, kappa_lambda=5.0, chunk_size=1_000)
    assert a["xsec_fb"] == b["xsec_fb"]
    ea, eb, ec = (_read(tmp_path / f"{x}.root") for x in "abc")
    for field in ea.fields:
        fa, fb = ak.to_numpy(ak.flatten(ea[field], axis=None)), ak.to_numpy(ak.flatten(eb[field], axis=None))
        assert fa.tobytes() == fb.tobytes(), field
    assert not np.array_equal(ak.to_numpy(ea.MET_pt), ak.to_numpy(ec.MET_pt))
    assert not np.array_equal(ak.to_numpy(ak.flatten(ea.GenPart_pt)[:100]), ak.to_numpy(ak.flatten(ec.GenPart_pt)[:100]))


# Pinned with the code before the generator became a subpackage (hhcoffea/generate.py, commit
# fddfd0a): events of a fixed seed must not change when the code is reorganised. Counts are exact;
# sums of float32 columns to 1e-9 (one flipped jet would move them by ~1e-4).
GOLDEN = {  # re-pinned for EMULATION_VERSION 3 (kT-based FSR, ISR recoil and shower emissions)
    "resonant": ({"m_x": 700.0}, 11425, 4726, 20048, 1455510.7695446014, 112346.68097782135),
    "nonresonant": ({"kappa_lambda": 3.0}, 10867, 5024, 17998, 1251471.5044078827, 102496.82905817032),
    "qcd": ({}, 8537, 4315, 12485, 672411.0098171234, 68139.74912846088),
    "ttbar": ({}, 11646, 2430, 24538, 694837.9310722351, 61781.630270808935),
}


@pytest.mark.parametrize("process", sorted(GOLDEN))
def test_events_of_a_seed_are_pinned(process):
    kwargs, n_jets, n_tags, n_genpart, sum_jet_pt, sum_met = GOLDEN[process]
    ev = generate_arrays(process, 2000, seed=5, chunk_size=900, **kwargs)
    jets = ev["Jet"]
    assert int(ak.sum(ak.num(jets))) == n_jets
    assert int(ak.sum(jets.btag & 1)) == n_tags  # bit 0: the sample's working point, drawn as before
    assert int(ak.sum(ak.num(ev["GenPart"]))) == n_genpart
    assert float(np.sum(ak.to_numpy(ak.flatten(jets.pt)).astype(np.float64))) == pytest.approx(sum_jet_pt, rel=1e-9)
    assert float(np.sum(ev["MET_pt"].astype(np.float64))) == pytest.approx(sum_met, rel=1e-9)


# --- the fast code paths against the plain formulations they replaced -------------------------
# The optimised merging, FSR, two-body decays and QCD rejection must give the same bytes as the
# straightforward versions below (the code before the optimisation, commit 63547e6), run in the
# same process with the same numpy: unlike a stored digest, this cannot break with a numpy
# upgrade, and it catches a change in the last bit of one value.
def _reference_boost(p4, beta):
    px, py, pz, e = p4
    bx, by, bz = beta
    b2 = bx * bx + by * by + bz * bz
    gamma = 1.0 / np.sqrt(1.0 - b2)
    bp = bx * px + by * py + bz * pz
    with np.errstate(divide="ignore", invalid="ignore"):
        g2 = np.where(b2 > 0, (gamma - 1.0) / np.where(b2 > 0, b2, 1.0), 0.0)
    k = g2 * bp + gamma * e
    return px + k * bx, py + k * by, pz + k * bz, gamma * (e + bp)


def _reference_two_body(rng, parent, mass, m1, m2, cos_theta=None):
    n = np.shape(mass)
    m1 = np.broadcast_to(m1, n)
    m2 = np.broadcast_to(m2, n)
    pstar = np.sqrt(np.clip((mass**2 - (m1 + m2) ** 2) * (mass**2 - (m1 - m2) ** 2), 0, None)) / (2 * mass)
    if cos_theta is None:
        cos_theta = rng.uniform(-1.0, 1.0, n)
    phi = rng.uniform(-np.pi, np.pi, n)
    sin_theta = np.sqrt(1.0 - cos_theta**2)
    qx, qy, qz = pstar * sin_theta * np.cos(phi), pstar * sin_theta * np.sin(phi), pstar * cos_theta
    beta = processes._beta(parent)
    d1 = _reference_boost((qx, qy, qz, np.sqrt(pstar**2 + m1**2)), beta)
    d2 = _reference_boost((-qx, -qy, -qz, np.sqrt(pstar**2 + m2**2)), beta)
    return d1, d2


def _reference_qcd_partons(rng, n):
    P = processes
    u = rng.uniform(0.0, 1.0, n)
    mass = np.minimum(P.QCD_M_MIN * (1.0 - u) ** (-1.0 / (P.QCD_M_POWER - 1.0)), 0.5 * xsec.SQRT_S)
    system = P._system(rng, mass)
    lo, hi = np.log(P.QCD_PAIR_MASS_MIN), np.log(0.5 * mass)
    ma = np.exp(lo + rng.uniform(0.0, 1.0, n) * (hi - lo))
    mb = np.exp(lo + rng.uniform(0.0, 1.0, n) * (hi - lo))
    cos_theta = np.tanh(rng.normal(0.0, P.QCD_ANGLE_SPREAD, n))
    pa, pb = _reference_two_body(rng, system, mass, ma, mb, cos_theta=cos_theta)
    quarks = []
    for pair, m in ((pa, ma), (pb, mb)):
        quarks.extend(_reference_two_body(rng, pair, m, P.B_QUARK_MASS, P.B_QUARK_MASS))
    ok = np.ones(n, dtype=bool)
    for px, py, pz, _ in quarks:
        pt = np.hypot(px, py)
        ok &= (pt > P.QCD_GEN_PT_MIN) & (np.abs(pz) < pt * math.sinh(P.QCD_GEN_ETA_MAX))
    return ok, [tuple(c[ok] for c in q) for q in quarks]


def _reference_fsr(rng, pt, eta, phi, alive, nf, first_slot):
    D = detector
    n = pt.shape[0]
    u = rng.uniform(0.0, 1.0, (4, n, nf))
    emits = u[0] < D.FSR_PROBABILITY
    z = D.FSR_Z_MIN * (D.FSR_Z_MAX / D.FSR_Z_MIN) ** u[1]
    kt = D.FSR_KT_SCALE * (-np.log1p(-u[2])) ** (1.0 / D.FSR_KT_SHAPE)
    with np.errstate(divide="ignore", invalid="ignore"):  # non-emitting slots may have pT 0
        theta = np.minimum(kt / (z * (1.0 - z) * pt[:, :nf]), D.FSR_THETA_MAX)
    z = z * np.clip((theta - D.MERGE_DR) / D.FSR_EDGE, 0.0, 1.0)
    c, s = np.cos(2.0 * np.pi * u[3]), np.sin(2.0 * np.pi * u[3])
    slots = slice(first_slot, first_slot + nf)
    e0, p0 = eta[:, :nf].copy(), phi[:, :nf].copy()
    pt[:, slots] = np.where(emits, z * pt[:, :nf], 0.0)
    eta[:, slots] = np.clip(e0 + (1.0 - z) * theta * c, -D.ISR_ETA_MAX, D.ISR_ETA_MAX)
    phi[:, slots] = (p0 + (1.0 - z) * theta * s + np.pi) % (2 * np.pi) - np.pi
    alive[:, slots] = emits
    pt[:, :nf] = np.where(emits, (1.0 - z) * pt[:, :nf], pt[:, :nf])
    eta[:, :nf] = np.where(emits, np.clip(e0 - z * theta * c, -D.ISR_ETA_MAX, D.ISR_ETA_MAX), e0)
    phi[:, :nf] = np.where(emits, (p0 - z * theta * s + np.pi) % (2 * np.pi) - np.pi, p0)


def _reference_merge(pt, eta, phi, mass, flav, alive, nf):
    # every pair of every slot through the dR test (delta_phi everywhere)
    m = pt.shape[1]
    for j in range(1, m):
        if j < nf:
            rows = None
            e_j, p_j, a_j = eta[:, : j + 1], phi[:, : j + 1], alive[:, :j]
        else:
            rows = np.flatnonzero(alive[:, j])
            if rows.size == 0:
                continue
            e_j, p_j, a_j = eta[rows, : j + 1], phi[rows, : j + 1], alive[rows, :j]
        deta = e_j[:, :j] - e_j[:, j : j + 1]
        dphi = delta_phi(p_j[:, :j], p_j[:, j : j + 1])
        cand = (deta * deta + dphi * dphi < detector.MERGE_DR**2) & a_j
        has = cand.any(axis=1)
        if not has.any():
            continue
        rows = np.flatnonzero(has) if rows is None else rows[has]
        tgt = np.argmax(cand[has], axis=1)
        merged = detector._add_ptetaphim(
            (pt[rows, tgt], eta[rows, tgt], phi[rows, tgt], mass[rows, tgt]),
            (pt[rows, j], eta[rows, j], phi[rows, j], mass[rows, j]),
        )
        pt[rows, tgt], eta[rows, tgt], phi[rows, tgt], mass[rows, tgt] = merged
        flav[rows, tgt] = np.maximum(flav[rows, tgt], flav[rows, j])
        alive[rows, j] = False


def _columns(events):
    out = {}
    for key, value in events.items():
        if isinstance(value, ak.Array):
            out[f"{key}.counts"] = ak.to_numpy(ak.num(value))
            for field in value.fields:
                out[f"{key}.{field}"] = ak.to_numpy(ak.flatten(value[field]))
        else:
            out[key] = np.asarray(value)
    return out


@pytest.mark.parametrize("process", ["resonant", "nonresonant", "qcd", "ttbar"])
def test_fast_paths_give_the_reference_events(process, monkeypatch):
    kwargs = {"resonant": {"m_x": 600.0}, "nonresonant": {"kappa_lambda": 2.0}}.get(process, {})
    fast = _columns(generate_arrays(process, 4000, seed=21, chunk_size=2500, **kwargs))
    monkeypatch.setattr(processes, "_two_body", _reference_two_body)
    monkeypatch.setattr(processes, "_qcd_partons", _reference_qcd_partons)
    monkeypatch.setattr(detector, "_final_state_radiation", _reference_fsr)
    monkeypatch.setattr(detector, "_merge_partons", _reference_merge)
    reference = _columns(generate_arrays(process, 4000, seed=21, chunk_size=2500, **kwargs))
    assert fast.keys() == reference.keys()
    for key in reference:
        assert fast[key].dtype == reference[key].dtype and fast[key].shape == reference[key].shape, key
        assert fast[key].tobytes() == reference[key].tobytes(), key
    assert fast["Jet.counts"].sum() > 4000  # events with jets, so the comparison compares something


def test_merging_matches_the_pairwise_dr_test_across_phi_wrap():
    """Dense partons (many pairs within dR 0.4, phi on both sides of +-pi, pairs at the boundary):
    the merging's prefilters (deta^2, phi difference modulo 2 pi) drop no pair the full test keeps."""
    rng = np.random.default_rng(3)
    n, nf, m = 3000, 4, 4 + detector.ISR_MAX + 4
    pt = rng.uniform(20.0, 200.0, (n, m))
    eta = rng.normal(0.0, 0.4, (n, m))
    phi = np.where(rng.uniform(size=(n, m)) < 0.5, np.pi - rng.uniform(0.0, 0.5, (n, m)),
                   -np.pi + rng.uniform(0.0, 0.5, (n, m)))
    # slot 1 exactly at dR = 0.4 (in phi, across the wrap) and just inside from slot 0
    phi[:, 0], eta[:, 1] = np.pi - 0.1, eta[:, 0]
    phi[:, 1] = np.where(np.arange(n) % 2 == 0, -np.pi + 0.3, -np.pi + 0.3 - 1e-12)
    mass = rng.uniform(0.0, 5.0, (n, m))
    flav = rng.choice(np.array([0, 4, 5], dtype=np.int32), (n, m))
    alive = rng.uniform(size=(n, m)) < 0.7
    alive[:, :nf] = True
    a = [x.copy() for x in (pt, eta, phi, mass, flav, alive)]
    b = [x.copy() for x in (pt, eta, phi, mass, flav, alive)]
    detector._merge_partons(*a, nf)
    _reference_merge(*b, nf)
    assert alive.sum() - a[5].sum() > n  # many merges happened
    for x, y in zip(a, b):
        assert x.tobytes() == y.tobytes()


def test_two_body_daughters_match_separate_boosts():
    """Both daughters from one set of boost factors equal two separate boosts, also at rest
    (beta = 0, the where branch) and for zero rest-frame momenta."""
    rng = np.random.default_rng(5)
    n = 5000
    parent = processes._system(rng, rng.uniform(300.0, 900.0, n))
    parent = tuple(np.where(np.arange(n) < 50, 0.0, c) if i < 3 else c for i, c in enumerate(parent))
    mass = np.sqrt(parent[3] ** 2 - parent[0] ** 2 - parent[1] ** 2 - parent[2] ** 2)
    m1 = np.where(np.arange(n) % 7 == 0, 0.5 * mass, 80.0)  # pstar = 0 where m1 = m2 = mass / 2
    m2 = np.where(np.arange(n) % 7 == 0, 0.5 * mass, 4.8)
    fast = processes._two_body(np.random.default_rng(9), parent, mass, m1, m2)
    reference = _reference_two_body(np.random.default_rng(9), parent, mass, m1, m2)
    for d_fast, d_ref in zip(fast, reference):
        for x, y in zip(d_fast, d_ref):
            assert np.asarray(x).tobytes() == np.asarray(y).tobytes()


def test_in_memory_matches_file(resonant_file):
    _, _, ev = resonant_file
    mem = generate_arrays("resonant", 20_000, seed=11, m_x=500.0, chunk_size=7_000)
    assert np.array_equal(ak.to_numpy(ak.flatten(mem["Jet"].pt)), ak.to_numpy(ak.flatten(ev.Jet_pt)))


# --- truth -----------------------------------------------------------------------------------
def _higgs_b(gen_pdg, gen_mother):
    mother = ak.where(gen_mother >= 0, gen_mother, 0)
    mother_pdg = ak.where(gen_mother >= 0, gen_pdg[mother], 0)
    return (abs(gen_pdg) == 5) & (mother_pdg == 25)


@pytest.mark.parametrize("process", ["resonant", "nonresonant"])
def test_signal_truth_structure(process):
    kw = {"m_x": 800.0} if process == "resonant" else {"kappa_lambda": -3.0}
    ev = generate_arrays(process, 3_000, seed=2, **kw)
    gp = ev["GenPart"]
    is_b = _higgs_b(gp.pdgId, gp.genPartIdxMother)
    assert ak.all(ak.sum(is_b, axis=1) == 4)
    assert ak.all(gp.status[is_b] == 23)
    higgs = gp[gp.pdgId == 25]
    assert ak.all(ak.num(higgs) == 2) and ak.all(higgs.status == 22)
    assert np.allclose(ak.to_numpy(ak.flatten(higgs.mass)), C.HIGGS_MASS)
    # each Higgs has exactly two b daughters, b and bbar
    mothers = ak.to_numpy(gp.genPartIdxMother[is_b])
    pdgs = ak.to_numpy(gp.pdgId[is_b])
    assert np.all(mothers[:, 0] == mothers[:, 1]) and np.all(mothers[:, 2] == mothers[:, 3])
    assert np.all(mothers[:, 0] != mothers[:, 2]) and np.all(pdgs.sum(axis=1) == 0)
    higgs_mother = ak.to_numpy(higgs.genPartIdxMother)
    if process == "resonant":
        assert np.all(higgs_mother == 0)
        assert ak.all(gp.pdgId[:, 0] == 35)
        mx = ak.to_numpy(gp.mass[:, 0])
        assert abs(np.median(mx) - 800.0) < 1.0 and np.percentile(abs(mx - 800.0), 90) < 5 * processes.X_WIDTH
    else:
        assert np.all(higgs_mother == -1)
        assert not ak.any(gp.pdgId == 35)


def _match(quark_eta, quark_phi, jets, dr_max=C.TRUTH_MATCH_DR):
    """Index of the closest jet to each quark (regular (n, q) arrays) and whether dR < dr_max."""
    width = max(int(ak.max(ak.num(jets.pt))), 1)
    pad = {f: ak.to_numpy(ak.fill_none(ak.pad_none(jets[f], width, clip=True), np.nan)) for f in ("pt", "eta", "phi", "mass")}
    dr = np.hypot(quark_eta[:, :, None] - pad["eta"][:, None, :], delta_phi(quark_phi[:, :, None], pad["phi"][:, None, :]))
    dr = np.where(np.isnan(dr), np.inf, dr)
    idx = np.argmin(dr, axis=2)
    ok = np.take_along_axis(dr, idx[:, :, None], 2)[:, :, 0] < dr_max
    return idx, ok, pad


def _pair_mass(pad, idx, a, b):
    p4 = to_cartesian(pad["pt"], pad["eta"], pad["phi"], pad["mass"])
    comps = [np.take_along_axis(c, idx[:, a : a + 1], 1)[:, 0] + np.take_along_axis(c, idx[:, b : b + 1], 1)[:, 0] for c in p4]
    return invariant_mass(*comps)


def test_truth_paired_higgs_masses(resonant_file):
    """Truth pairing, candidates ordered by scalar-sum jet pT: m_h1 ~ 120, m_h2 ~ 110 (PHYSICS.md)."""
    _, _, ev = resonant_file
    is_b = _higgs_b(ev.GenPart_pdgId, ev.GenPart_genPartIdxMother)
    jets = ak.zip({"pt": ev.Jet_pt, "eta": ev.Jet_eta, "phi": ev.Jet_phi, "mass": ev.Jet_mass, "flav": ev.Jet_hadronFlavour})
    qeta = ak.to_numpy(ev.GenPart_eta[is_b]).astype(float)
    qphi = ak.to_numpy(ev.GenPart_phi[is_b]).astype(float)
    idx, ok, pad = _match(qeta, qphi, jets)
    # jets matched to Higgs b quarks carry hadronFlavour 5 (but for the rare light jet nearer to
    # the quark than its own: a wide FSR gluon whose b recoiled away, as in a shower). 98.8% since
    # EMULATION_VERSION 3 (soft b quarks radiate at wide angles); showered samples: 95.5-96%
    flav = ak.to_numpy(ak.fill_none(ak.pad_none(jets.flav, pad["pt"].shape[1], clip=True), -1))
    assert np.mean(np.take_along_axis(flav, idx, 1)[ok] == 5) > 0.98
    distinct = np.all(np.diff(np.sort(idx, axis=1), axis=1) > 0, axis=1)
    jpt = np.take_along_axis(pad["pt"], idx, 1)
    jeta = np.take_along_axis(pad["eta"], idx, 1)
    good = ok.all(axis=1) & distinct & np.all((jpt > C.FOUR_TAG_PT_MIN) & (abs(jeta) < C.FOUR_TAG_ETA_MAX), axis=1)
    assert good.mean() > 0.15
    ma, mb = _pair_mass(pad, idx, 0, 1), _pair_mass(pad, idx, 2, 3)  # b's of Higgs 1, then Higgs 2
    lead_a = jpt[:, 0] + jpt[:, 1] >= jpt[:, 2] + jpt[:, 3]
    m1 = np.where(lead_a, ma, mb)[good]
    m2 = np.where(lead_a, mb, ma)[good]
    assert abs(np.median(m1) - 120.0) < 4.0, np.median(m1)
    assert abs(np.median(m2) - 110.0) < 4.0, np.median(m2)
    assert np.median(m1) - np.median(m2) > 5.0


# --- b-tagging -------------------------------------------------------------------------------
def _binomial_check(tags, n, p, n_sigma=4.0):
    assert n > 100
    assert abs(tags - n * p) < n_sigma * np.sqrt(n * p * (1 - p)) + 1, (tags, n, p)


@pytest.mark.parametrize("working_point", ["MV2c10_70", "DL1r_77"])
def test_btag_rates_per_flavour(ttbar_events, working_point):
    ev = ttbar_events if working_point == "MV2c10_70" else generate_arrays("ttbar", 12_000, seed=4, working_point=working_point)
    jets = ev["Jet"]
    wp = C.BTAG_WORKING_POINTS[working_point]
    central = abs(jets.eta) < detector.BTAG_ETA_MAX
    expected = {5: wp["b_efficiency"], 4: 1 / wp["c_rejection"], 0: 1 / wp["light_rejection"]}
    for flavour, p in expected.items():
        sel = central & (jets.hadronFlavour == flavour)
        _binomial_check(int(ak.sum(jets.btag[sel] & 1)), int(ak.sum(sel)), p)
    assert ak.sum(jets.btag[~central]) == 0  # no tracker, no tag (no bit at all)


def test_default_working_points():
    ev_nr = generate_arrays("nonresonant", 4_000, seed=1)
    b = ev_nr["Jet"][(ev_nr["Jet"].hadronFlavour == 5) & (abs(ev_nr["Jet"].eta) < 2.5)]
    _binomial_check(int(ak.sum(b.btag & 1)), int(ak.count(b.btag)), C.BTAG_WORKING_POINTS["DL1r_77"]["b_efficiency"])


# --- nonresonant -----------------------------------------------------------------------------
def test_nonresonant_xsec_is_quadratic_and_normalised():
    assert xsec.nonresonant_xsec(1.0) == pytest.approx(C.GGF_HH_XSEC_SM_13TEV, rel=1e-12)
    k = np.array([-7.0, -1.0, 0.0, 2.5, 4.0, 12.0])
    c0, c1, c2 = xsec.nonresonant_xsec_coefficients()
    assert np.allclose(xsec.nonresonant_xsec(k), c0 + c1 * k + c2 * k * k, rtol=1e-12)
    # three basis points determine every other value exactly
    basis = np.array([0.0, 1.0, 5.0])
    coeffs = np.polyfit(basis, xsec.nonresonant_xsec(basis), 2)
    assert np.allclose(np.polyval(coeffs, k), xsec.nonresonant_xsec(k), rtol=1e-9)
    k_min = -c1 / (2 * c2)
    assert 1.8 <= k_min <= 2.8
    assert k_min == pytest.approx(xsec.NONRESONANT_XSEC_MINIMUM, abs=2e-3)
    assert xsec.nonresonant_xsec(k_min) < xsec.nonresonant_xsec(k_min - 0.3)
    assert xsec.nonresonant_xsec(k_min) < xsec.nonresonant_xsec(k_min + 0.3)
    assert c2 > 0 and c1 < 0


@pytest.mark.parametrize("kappa_lambda", [-6.0, 0.0, 1.0, 2.28, 3.0, 10.0])
def test_nonresonant_sidecar_xsec_is_nnlo_times_br(tmp_path, kappa_lambda):
    """sigma_NNLO(kappa) = 70.3874 - 50.4111 kappa + 11.0595 kappa^2 fb (PHYSICS.md) x 0.5824^2."""
    meta = generate("nonresonant", 200, tmp_path / "nr.root", kappa_lambda=kappa_lambda)
    nnlo = 70.3874 - 50.4111 * kappa_lambda + 11.0595 * kappa_lambda**2
    assert meta["xsec_fb"] == pytest.approx(nnlo * 0.5824**2, rel=1e-12)
    assert json.loads((tmp_path / "nr.root.json").read_text())["xsec_fb"] == meta["xsec_fb"]
    assert "NNLO" in meta["xsec_source"]
    assert meta["kappa_lambda"] == kappa_lambda and meta["m_x"] is None and meta["working_point"] == "DL1r_77"
    # the emulated (LO) sigma normalises the shape only; it differs away from kappa = 1
    k_factor = xsec.nonresonant_k_factor(kappa_lambda)
    assert meta["xsec_fb"] == pytest.approx(xsec.nonresonant_xsec(kappa_lambda) * k_factor * C.BR_HH_4B, rel=1e-12)
    assert (abs(k_factor - 1.0) < 1e-3) == (kappa_lambda == 1.0)


def test_sample_xsec_default_kappa_and_errors():
    assert xsec.sample_xsec_fb("nonresonant", None, None) == pytest.approx(C.ggf_hh_xsec_13tev(1.0) * C.BR_HH_4B)
    assert xsec.sample_xsec_fb("resonant", 500, None) == pytest.approx(calibration.RESONANT_XSEC_TABLE[500.0])
    with pytest.raises(ValueError, match="needs m_x"):
        xsec.sample_xsec_fb("resonant", None, None)
    with pytest.raises(ValueError, match="unknown process"):
        xsec.sample_xsec_fb("zprime", None, None)


def test_nnlo_morphing_coefficients_are_exact_on_densities():
    """Densities normalised to sigma_NNLO at kappa_i morph into the one at kappa exactly."""
    m = np.linspace(260.0, 1500.0, 60)
    nnlo_density = lambda k: xsec.mhh_density(m, k) * xsec.nonresonant_k_factor(k)  # noqa: E731
    basis = (0.0, 1.0, 5.0)
    for k in (-3.0, 2.5, 8.0):
        d = xsec.nonresonant_morphing_coefficients(basis, k)
        morphed = sum(di * nnlo_density(ki) for di, ki in zip(d, basis))
        np.testing.assert_allclose(morphed, nnlo_density(k), rtol=1e-9, atol=1e-12)
        # the plain Lagrange coefficients get the total right but not the shape
        from hhcoffea.stats.morphing import basis_coefficients

        plain = sum(ci * nnlo_density(ki) for ci, ki in zip(basis_coefficients(basis, k), basis))
        assert np.max(np.abs(plain / nnlo_density(k) - 1.0)) > 0.05


def test_mhh_density_morphs_exactly():
    m = np.linspace(260.0, 1200.0, 50)
    d = {k: xsec.mhh_density(m, k) for k in (0.0, 1.0, 5.0, 2.0)}
    # d(k) = d0 (1-k)(5-k)/5 + d1 k(5-k)/4 + d5 k(k-1)/20  (Lagrange basis on 0, 1, 5)
    k = 2.0
    morphed = d[0.0] * (1 - k) * (5 - k) / 5 + d[1.0] * k * (5 - k) / 4 + d[5.0] * k * (k - 1) / 20
    assert np.allclose(morphed, d[2.0], rtol=1e-9, atol=1e-12)
    # density integrates to the cross section
    grid = np.linspace(2 * C.HIGGS_MASS, xsec.MHH_GRID_MAX, 200_001)
    assert np.trapezoid(xsec.mhh_density(grid, 1.0), grid) == pytest.approx(31.05, rel=1e-3)  # emulated, not NNLO


def test_mhh_shapes():
    rng = np.random.default_rng(0)
    sm = xsec.sample_mhh(rng, 200_000, 1.0)
    k5 = xsec.sample_mhh(rng, 200_000, 5.0)
    assert sm.min() >= 2 * C.HIGGS_MASS
    h, edges = np.histogram(sm, bins=np.arange(250.0, 1500.0, 20.0))
    peak = 0.5 * (edges[np.argmax(h)] + edges[np.argmax(h) + 1])
    assert 300.0 <= peak <= 500.0
    # kappa = 5: the triangle dominates, the spectrum piles up at threshold
    assert np.median(k5) < np.median(sm) - 100.0
    h5, _ = np.histogram(k5, bins=edges)
    assert np.argmax(h5) < np.argmax(h)
    # the generated events carry it: truth m_hh of the two Higgs bosons
    ev = generate_arrays("nonresonant", 5_000, seed=9, kappa_lambda=1.0)
    h_ = ev["GenPart"][ev["GenPart"].pdgId == 25]
    p = [ak.to_numpy(x) for x in (h_.pt, h_.eta, h_.phi, h_.mass)]
    px, py, pz, e = to_cartesian(*p)
    mhh = invariant_mass(px.sum(1), py.sum(1), pz.sum(1), e.sum(1))
    assert abs(np.median(mhh) - np.median(sm)) < 20.0


# --- backgrounds -----------------------------------------------------------------------------
def test_qcd_m4j_turns_on_above_150(qcd_events):
    jets = qcd_events["Jet"]
    gp = qcd_events["GenPart"]
    # b quarks of the hard process: |pdgId| 5, status 23, no mother
    hard_b = (abs(gp.pdgId) == 5) & (gp.status == 23)
    assert ak.all(ak.sum(hard_b, axis=1) == 4) and ak.all(gp.genPartIdxMother[hard_b] == -1)
    # four-jet mass of the four leading central jets with pT > 40 (flavour-blind: more statistics)
    good = jets[(jets.pt > C.FOUR_TAG_PT_MIN) & (abs(jets.eta) < C.FOUR_TAG_ETA_MAX)]
    four = good[ak.num(good) >= 4][:, :4]
    px, py, pz, e = to_cartesian(*(ak.to_numpy(four[f]) for f in ("pt", "eta", "phi", "mass")))
    m4j = invariant_mass(px.sum(1), py.sum(1), pz.sum(1), e.sum(1))
    assert len(m4j) > 1000
    assert np.mean(m4j < 150.0) < 0.01
    counts, _ = np.histogram(m4j, bins=[150, 200, 250, 300, 350])
    assert counts[0] < counts[1] < counts[2]  # a gradual turn-on, not a step
    assert 250.0 < np.median(m4j) < 550.0


def test_qcd_four_tag_calibration(qcd_events):
    eff = calibration.four_tag_passed(qcd_events["Jet"]).mean()
    n = len(qcd_events["MET_pt"])
    err = np.sqrt(eff * (1 - eff) / n)
    assert abs(eff - calibration.QCD_FOUR_TAG_EFFICIENCY) < 4 * err
    assert xsec.QCD_XSEC_FB * calibration.QCD_FOUR_TAG_EFFICIENCY == pytest.approx(C.QCD_4B_XSEC_AFTER_FOUR_TAG)


def test_qcd_mhh_windows_match_the_seeds(qcd_events):
    """After the four-tag cut (MV2c10-70) the QCD cross section in the m_hh windows of m_H = 500
    and 1000 (four leading b-jets) is the seeds' 2.57e3 and 3.32e2 fb (seed 001 table 3) within
    25% and 40% (the emulation has 2.3e3 and 3.1e2 fb)."""
    n = len(qcd_events["MET_pt"])
    mass = calibration.leading_bjets_mass(qcd_events["Jet"])
    windows = list(C.QCD_4B_XSEC_MHH_WINDOWS.items())
    for ((lo, hi), reference), tolerance in zip(windows, (0.25, 0.40)):
        k = int(np.sum((mass >= lo) & (mass < hi)))
        assert k > 30
        accepted = xsec.QCD_XSEC_FB * k / n
        assert abs(accepted / reference - 1.0) < tolerance, (lo, hi, accepted)


def test_ttbar_is_below_a_tenth_of_qcd_after_four_tag(qcd_events):
    """Seed 003 sec. II.B: ttbar "contributes to less than 10% of the dominant background". After
    the four-tag cut it is ~1% of QCD at MV2c10-70 and ~4% at DL1r-77 (c and light mistags of the
    W decays and radiation), below the bound within 2 sigma of the MC statistics. (3% and 9% before
    EMULATION_VERSION 3, whose ISR, tuned to the showered signal's non-Higgs tagged jets, holds
    about a third of the c and b partons; the lower bounds, ~40% of the values, catch a loss of
    the mistags.)"""
    ttbar = generate_arrays("ttbar", 100_000, seed=8)
    n_q, n_t = len(qcd_events["MET_pt"]), len(ttbar["MET_pt"])
    for bit, low in ((1, 0.004), (2, 0.016)):  # Jet_btag bits: 1 MV2c10_70, 2 DL1r_77
        k_q = int(calibration.four_tag_passed(_with_btag_bit(qcd_events["Jet"], bit)).sum())
        k_t = int(calibration.four_tag_passed(_with_btag_bit(ttbar["Jet"], bit)).sum())
        ratio = (xsec.TTBAR_XSEC_FB * k_t / n_t) / (xsec.QCD_XSEC_FB * k_q / n_q)
        error = ratio * np.sqrt(1.0 / k_t + 1.0 / k_q)
        assert low < ratio < C.REFERENCE_TTBAR_FRACTION_MAX + 2 * error, (bit, ratio, error)


def _with_btag_bit(jets, bit):
    """The jets with bit ``bit`` of Jet_btag moved to bit 0 (what four_tag_passed reads)."""
    return ak.zip({"pt": jets.pt, "eta": jets.eta, "btag": (jets.btag >> bit) & 1})


def test_calibration_uses_the_processor_four_tag_cut(qcd_events):
    """four_tag_passed (selection.four_tag_flat on the flat columns) against the cut written out."""
    jets = qcd_events["Jet"]
    good = ((jets.btag & 1) == 1) & (jets.pt > C.FOUR_TAG_PT_MIN) & (abs(jets.eta) < C.FOUR_TAG_ETA_MAX)
    expected = ak.to_numpy(ak.sum(good, axis=1) >= C.FOUR_TAG_N_BJETS)
    passed = calibration.four_tag_passed(jets)
    assert passed.dtype == bool and 500 < passed.sum() < 2000
    assert np.array_equal(passed, expected)
    mass = calibration.leading_bjets_mass(jets)
    assert np.isnan(mass[~passed]).all() and (mass[passed] > 150.0).mean() > 0.99


def test_resonant_four_tag_calibration(resonant_file):
    _, meta, ev = resonant_file
    jets = ak.zip({"pt": ev.Jet_pt, "eta": ev.Jet_eta, "btag": ev.Jet_btag})
    n = meta["n_generated"]
    eff = calibration.four_tag_passed(jets).mean()
    accepted = meta["xsec_fb"] * eff
    err = meta["xsec_fb"] * np.sqrt(eff * (1 - eff) / n)
    assert abs(accepted - C.RESONANT_XSEC_AFTER_FOUR_TAG[500.0]) < 4 * err
    assert xsec.resonant_xsec(1000.0) * calibration.RESONANT_FOUR_TAG_EFFICIENCY[1000.0] == pytest.approx(0.081, rel=1e-3)
    # log interpolation between table points, falling with mass
    x = xsec.resonant_xsec(np.array([500.0, 550.0, 600.0]))
    assert x[1] == pytest.approx(np.sqrt(x[0] * x[2]), rel=1e-9)
    assert np.all(np.diff(xsec.resonant_xsec(np.linspace(260.0, 4000.0, 40))) < 0)


def test_ttbar_truth_and_w_mass(ttbar_events):
    gp = ttbar_events["GenPart"]
    pdg = ak.to_numpy(gp.pdgId[:, :10])
    mother = ak.to_numpy(gp.genPartIdxMother[:, :10])
    assert np.all(pdg[:, :6] == [6, -6, 24, -24, 5, -5])
    assert np.all(mother == [-1, -1, 0, 1, 0, 1, 2, 2, 3, 3])
    # W+ -> up-type + anti-down-type; W -> cs about half the time
    assert np.all(np.isin(pdg[:, 6], [2, 4])) and np.all(np.isin(pdg[:, 7], [-1, -3]))
    assert np.all(np.isin(pdg[:, 8], [-2, -4])) and np.all(np.isin(pdg[:, 9], [1, 3]))
    assert 0.45 < np.mean(pdg[:, 6] == 4) < 0.55
    # reconstructed mass of the two jets matched to the W+ quarks
    qeta = ak.to_numpy(gp.eta[:, 6:8]).astype(float)
    qphi = ak.to_numpy(gp.phi[:, 6:8]).astype(float)
    idx, ok, pad = _match(qeta, qphi, ttbar_events["Jet"])
    good = ok.all(axis=1) & (idx[:, 0] != idx[:, 1])
    assert good.mean() > 0.3
    m_w = _pair_mass(pad, idx, 0, 1)[good]
    assert abs(np.median(m_w) - 80.0) < 5.0, np.median(m_w)
    # jets from c quarks carry hadronFlavour 4
    flav = ak.to_numpy(ak.fill_none(ak.pad_none(ttbar_events["Jet"].hadronFlavour, pad["pt"].shape[1], clip=True), -1))
    c_jet = np.take_along_axis(flav, idx, 1)[:, 0][good & (pdg[:, 6] == 4)]
    assert np.mean(c_jet >= 4) > 0.95


# --- arguments and CLI -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        (("zprime", 10), {}, "unknown process"),
        (("resonant", 10), {}, "needs m_x"),
        (("resonant", 10), {"m_x": 200.0}, "m_x must lie"),
        (("qcd", 10), {"m_x": 500.0}, "only applies"),
        (("resonant", 10), {"m_x": 500.0, "kappa_lambda": 1.0}, "only applies"),
        (("nonresonant", 10), {"kappa_lambda": float("nan")}, "finite"),
        (("qcd", 10), {"working_point": "DL1r_60"}, "working point"),
        (("qcd", 0), {}, "positive integer"),
        (("qcd", 10), {"chunk_size": 0}, "positive integer"),
        (("qcd", 10), {"seed": 1.5}, "seed must be an integer"),
    ],
)
def test_bad_arguments(tmp_path, args, kwargs, message):
    with pytest.raises(ValueError, match=message) as err:
        generate(args[0], args[1], tmp_path / "x.root", **kwargs)
    assert "\n" not in str(err.value)
    assert not (tmp_path / "x.root").exists()


def test_cli(tmp_path, capsys):
    parser = argparse.ArgumentParser()
    emulation_cli.add_arguments(parser)
    out = tmp_path / "cli.root"
    args = parser.parse_args(["resonant", "--m-x", "700", "-n", "500", "-o", str(out), "--seed", "1"])
    assert emulation_cli.main(args) == 0
    meta = json.loads((tmp_path / "cli.root.json").read_text())
    assert meta["m_x"] == 700.0 and meta["n_generated"] == 500 and meta["seed"] == 1
    assert _read(out).nJet.type.length == 500
    assert "cli.root" in capsys.readouterr().out


def test_cli_module_is_light():
    """Every hhcoffea parser imports emulation.cli; the detector and uproot wait for the command."""
    import subprocess
    import sys

    code = (
        "import argparse, sys, hhcoffea.cli.generate as c; c.add_arguments(argparse.ArgumentParser()); "
        "print(sorted(m for m in ('uproot', 'awkward', 'hhcoffea.emulation.detector', 'hhcoffea.emulation.processes') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")[0]
    assert out == "['hhcoffea.emulation.processes']"


def test_job_samples_with_a_stale_cross_section_are_remade(tmp_path):
    """A sidecar written with another normalisation (e.g. before NNLO) does not survive a run."""
    import yaml

    from hhcoffea.workflow.job import load_job
    from hhcoffea.workflow.runner import ensure_samples

    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump({
        "name": "stale", "output": "out", "pairers": {"min_dr": {}},
        "samples": {"directory": "data", "seed": 1, "generate": {"hh": {"process": "nonresonant", "kappa_lambda": 5.0, "n_events": 300}}},
    }))
    nnlo = C.ggf_hh_xsec_13tev(5.0) * C.BR_HH_4B
    first = ensure_samples(load_job(job_file))["hh"]["metadata"]["xsec_fb"]
    sidecar = tmp_path / "data" / "hh.root.json"
    meta = json.loads(sidecar.read_text())
    meta["xsec_fb"] = xsec.nonresonant_xsec(5.0) * C.BR_HH_4B  # the emulated (LO) normalisation
    sidecar.write_text(json.dumps(meta))
    again = ensure_samples(load_job(job_file))["hh"]["metadata"]["xsec_fb"]
    assert first == pytest.approx(nnlo, rel=1e-12) and again == first
    assert json.loads(sidecar.read_text())["xsec_fb"] == first
