"""Cut-based selection pieces against hand calculations and per-event reference loops."""

from __future__ import annotations

import itertools
import math

import awkward as ak
import numpy as np
import pytest

from hhcoffea import constants as c
from hhcoffea.columnar.selection import four_tag, good_jets, higgs_candidates, min_x_wt, resonant_pt_cuts, x_hh
from hhcoffea.columnar.truth import correct_higgs_count, match_quarks
from hhcoffea.pairing import get_pairer, order_by_scalar_pt


def p4(pt, eta, phi, m):
    return np.array([pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta),
                     math.sqrt((pt * math.cosh(eta)) ** 2 + m * m)])


def mass(v):
    return math.sqrt(max(v[3] ** 2 - v[0] ** 2 - v[1] ** 2 - v[2] ** 2, 0.0))


def random_jets(n, seed, n_min=4, n_max=9):
    rng = np.random.default_rng(seed)
    counts = rng.integers(n_min, n_max, n)
    total = counts.sum()
    pt = rng.exponential(70, total) + 40
    ev = np.repeat(np.arange(n), counts)
    order = np.lexsort((-pt, ev))
    jets = ak.zip({
        "pt": ak.unflatten(pt[order], counts),
        "eta": ak.unflatten(rng.normal(0, 1.2, total), counts),
        "phi": ak.unflatten(rng.uniform(-np.pi, np.pi, total), counts),
        "mass": ak.unflatten(rng.uniform(5, 15, total), counts),
        "btag": ak.unflatten(rng.random(total) < 0.8, counts),
    })
    return jets


def test_x_hh_values():
    assert x_hh(np.array(120.0), np.array(110.0)) == pytest.approx(0.0)
    # 10% of m_h1 off in m_h1 alone: X = (132-120)/(13.2)
    assert x_hh(np.array(132.0), np.array(110.0)) == pytest.approx(12 / 13.2)
    assert x_hh(np.array(100.0), np.array(100.0)) == pytest.approx(math.hypot(20 / 10, 10 / 10))


def test_resonant_pt_cuts_boundaries():
    m4j = np.array([500.0, 500.0, 500.0])
    lead = np.array([147.1, 146.9, 200.0])  # threshold 0.5*500-103 = 147
    subl = np.array([92.0, 93.0, 91.9])  # threshold 0.33*500-73 = 92
    # lead passes but subl sits on the threshold; lead fails; subl fails
    assert resonant_pt_cuts(lead, subl, m4j).tolist() == [False, False, False]
    assert resonant_pt_cuts(np.array([148.0]), np.array([93.0]), np.array([500.0])).tolist() == [True]


def test_four_tag_uses_pt_and_eta():
    jets = ak.zip({
        "pt": [[100, 90, 80, 70], [100, 90, 80, 39.9], [100, 90, 80, 70, 50]],
        "eta": [[0, 0, 0, 2.49], [0, 0, 0, 0], [0, 0, 2.6, 0, 0]],
        "phi": [[0, 1, 2, 3]] * 2 + [[0, 1, 2, 3, 4]],
        "mass": [[5] * 4] * 2 + [[5] * 5],
        "btag": [[True] * 4, [True] * 4, [True] * 5],
    })
    assert four_tag(good_jets(jets)).tolist() == [True, False, True]


def brute_x_wt(jets_event, hc):
    """min X_Wt by explicit loops over W pairs and Higgs-candidate jets (reference)."""
    vecs = [p4(j["pt"], j["eta"], j["phi"], j["mass"]) for j in jets_event]
    best = math.inf
    for i, k in itertools.combinations(range(len(vecs)), 2):
        w = vecs[i] + vecs[k]
        mw = mass(w)
        for b in hc:
            if b in (i, k):
                continue
            mt = mass(w + vecs[b])
            x = math.hypot((mw - 80) / (0.1 * mw), (mt - 173) / (0.1 * mt))
            best = min(best, x)
    return best


def test_min_x_wt_matches_reference_loop():
    jets = random_jets(300, seed=11)
    hc = np.tile(np.array([[[0, 1], [2, 3]]]), (len(jets), 1, 1))
    got = min_x_wt(jets, hc)
    ref = [brute_x_wt(ak.to_list(jets[i]), [0, 1, 2, 3]) for i in range(len(jets))]
    assert np.isfinite(got).all()  # inf == inf would compare nothing
    np.testing.assert_allclose(got, ref, rtol=1e-9)


def test_top_veto_finds_a_built_top():
    # W -> two jets of 40 GeV back to back in the transverse plane at eta 0: m_W = 80
    # plus a Higgs-candidate b-jet: choose its momentum so that m_t = 173 exactly
    # massless b along y with energy E: m_t^2 = (80 + E)^2 - E^2 = 6400 + 160 E
    e_b = (173**2 - 80**2) / 160
    jets = ak.zip({
        "pt": [[e_b, 60, 50, 40, 40, 45]],
        "eta": [[0, 2.0, -2.0, 0, 0, 1.0]],
        "phi": [[math.pi / 2, 1.0, 2.0, 0, math.pi, -1.0]],
        "mass": [[0, 10, 10, 0, 0, 10]],
        "btag": [[True] * 6],
    })
    hc = np.array([[[0, 1], [2, 5]]])
    assert min_x_wt(jets, hc)[0] == pytest.approx(0.0, abs=1e-6)
    # a W built only from Higgs-candidate jets cannot take one of them as its b
    assert brute_x_wt(ak.to_list(jets[0]), [0, 1, 2, 5]) == pytest.approx(0.0, abs=1e-6)


def test_higgs_candidates_and_ordering():
    jets = random_jets(200, seed=5)
    raw = np.tile(np.array([[[2, 3], [0, 1]]]), (len(jets), 1, 1))
    ordered = order_by_scalar_pt(raw, jets)
    # jets are pT-ordered, so (j0 j1) has the larger scalar sum
    assert (ordered[:, 0] == [0, 1]).all()
    cand = higgs_candidates(jets, ordered)
    for i in range(20):
        ev = ak.to_list(jets[i])
        v = [p4(j["pt"], j["eta"], j["phi"], j["mass"]) for j in ev]
        h1, h2 = v[0] + v[1], v[2] + v[3]
        assert cand["mass"][i, 0] == pytest.approx(mass(h1), rel=1e-9)
        assert cand["m_hh"][i] == pytest.approx(mass(h1 + h2), rel=1e-9)
        assert cand["scalar_pt"][i, 0] == pytest.approx(ev[0]["pt"] + ev[1]["pt"])


def test_truth_correctness_counts():
    jets = ak.zip({
        "pt": [[100, 90, 80, 70, 60]] * 3,
        "eta": [[0.0, 1.0, -1.0, 2.0, -2.0]] * 3,
        "phi": [[0.0, 1.0, 2.0, 3.0, -1.0]] * 3,
        "mass": [[5.0] * 5] * 3,
    })
    # quarks on jets 0,2 (Higgs 0) and 1,3 (Higgs 1); event 2's last quark matches nothing
    q_eta = [[0.0, -1.0, 1.0, 2.0]] * 2 + [[0.0, -1.0, 1.0, 0.0]]
    q_phi = [[0.05, 2.0, 1.0, 3.0]] * 2 + [[0.05, 2.0, 1.0, -2.0]]
    bquarks = ak.zip({"eta": q_eta, "phi": q_phi, "higgs_id": [[0, 0, 1, 1]] * 3})
    matched, hid, _ = match_quarks(jets, bquarks, n_higgs=2)
    assert matched.tolist() == [[0, 2, 1, 3], [0, 2, 1, 3], [0, 2, 1, -1]]
    pairing = np.array([[[0, 2], [1, 3]], [[0, 1], [2, 3]], [[2, 0], [1, 4]]])
    n_correct, full = correct_higgs_count(pairing, matched, hid)
    assert n_correct.tolist() == [2, 0, 1]
    assert full.tolist() == [True, True, False]


def test_four_tag_flat_matches_jagged():
    from hhcoffea.columnar.selection import four_tag_flat

    jets = random_jets(3000, seed=21, n_min=0, n_max=9)
    jets = ak.with_field(jets, jets.pt - 25.0, "pt")  # put some jets below 40 GeV
    counts = ak.to_numpy(ak.num(jets.pt))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = {f: ak.to_numpy(ak.flatten(jets[f])) for f in ("pt", "eta", "btag")}
    got = four_tag_flat(offsets, flat["pt"], flat["eta"], flat["btag"])
    expected = four_tag(good_jets(jets))
    assert got.tolist() == expected.tolist() and 0 < got.sum() < len(got)


# ----------------------------------------------------------------------------------------------
# the top veto: events with a known X_Wt, and tt̄ against signal


def x_wt_value(m_w, m_t):
    """X_Wt of PHYSICS.md "Cut-based selection" for one W and top mass."""
    return math.hypot((m_w - c.TOP_VETO_W_MASS) / (c.TOP_VETO_RESOLUTION * m_w),
                      (m_t - c.TOP_VETO_TOP_MASS) / (c.TOP_VETO_RESOLUTION * m_t))


def top_event(m_w, m_t, top_jet_tagged=True):
    """Jets of one event with a hadronic top of masses (m_w, m_t); the top's b jet is a tagged jet.

    W: two massless untagged 60-GeV jets at eta 0, phi = +-a/2 with 7200 (1 - cos a) = m_w^2, so
    E_W = 120 along x. b: massless at eta 0 along y (perpendicular to the W), so
    m_t^2 = m_w^2 + 2 E_W E_b. Three more tagged jets sit forward and opposite, far from any W or
    top mass. Returns the pT-ordered jets and the indices of the four tagged (Higgs-candidate) jets.
    """
    half = 0.5 * math.acos(1.0 - m_w * m_w / 7200.0)
    e_b = (m_t * m_t - m_w * m_w) / 240.0
    jets = [
        {"pt": 60.0, "eta": 0.0, "phi": -half, "mass": 0.0, "btag": False},
        {"pt": 60.0, "eta": 0.0, "phi": half, "mass": 0.0, "btag": False},
        {"pt": e_b, "eta": 0.0, "phi": math.pi / 2, "mass": 0.0, "btag": top_jet_tagged},
        {"pt": 250.0, "eta": 2.2, "phi": -2.0, "mass": 10.0, "btag": True},
        {"pt": 230.0, "eta": -2.2, "phi": -1.2, "mass": 10.0, "btag": True},
        {"pt": 210.0, "eta": 1.9, "phi": 3.0, "mass": 10.0, "btag": True},
    ]
    if not top_jet_tagged:  # a fourth tagged jet, away from the top
        jets.append({"pt": 205.0, "eta": -1.9, "phi": 2.6, "mass": 10.0, "btag": True})
    jets.sort(key=lambda j: -j["pt"])
    return jets, [i for i, j in enumerate(jets) if j["btag"]]


# (m_W, m_t) around the veto threshold X_Wt = 1.5: vetoed below, kept from 1.5 on
TOP_MASSES = [(80.0, 173.0), (84.0, 180.0), (80.0 / (1 - 0.145), 173.0), (80.0 / (1 - 0.155), 173.0),
              (80.0, 173.0 / (1 + 0.149)), (80.0, 173.0 / (1 + 0.151)), (100.0, 173.0), (80.0, 260.0)]


def test_top_veto_on_events_with_known_x_wt():
    expected = np.array([x_wt_value(m_w, m_t) for m_w, m_t in TOP_MASSES])
    np.testing.assert_allclose(expected[2:6], [1.45, 1.55, 1.49, 1.51], rtol=1e-12)  # premises
    built = [top_event(m_w, m_t) for m_w, m_t in TOP_MASSES]
    jets = ak.Array([ev for ev, _ in built])
    # the chain the processor runs: good jets, four tag, pairing, then X_Wt over the candidates
    good = good_jets(jets)
    assert ak.num(good).tolist() == [6] * len(built) and four_tag(good).all()
    pairing = get_pairer("min_dr")(good)
    assert pairing.accepted.all()
    for (_, tagged), chosen in zip(built, pairing.higgs_jet_indices):
        assert sorted(np.ravel(chosen)) == tagged
    got = min_x_wt(good, pairing.higgs_jet_indices)
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-7)
    kept = got >= c.TOP_VETO_X_WT_MIN  # PHYSICS.md: veto the event if min X_Wt < 1.5
    assert kept.tolist() == [False, False, False, True, False, True, True, True]


def test_top_veto_takes_the_b_only_from_the_higgs_candidates():
    # the same top with an untagged b jet: no top candidate has X_Wt near 0 any more
    built = [top_event(80.0, 173.0, top_jet_tagged=False)]
    jets = ak.Array([ev for ev, _ in built])
    hc = np.array([built[0][1]]).reshape(1, 2, 2)
    got = min_x_wt(jets, hc)
    assert got[0] > 3 * c.TOP_VETO_X_WT_MIN
    assert got[0] == pytest.approx(brute_x_wt(ak.to_list(jets[0]), built[0][1]), rel=1e-9)
    tagged = top_event(80.0, 173.0)
    assert min_x_wt(ak.Array([tagged[0]]), np.array([tagged[1]]).reshape(1, 2, 2))[0] == pytest.approx(0.0, abs=1e-6)


def vetoed_fraction(process, n_events, **options):
    """Fraction of four-tag events a top veto removes, on generated events (min-ΔR pairing).

    Every b and c jet counts as tagged: tt̄ reaches four tags mostly through the c jets of W -> cs,
    which the working points tag too rarely for a small sample to keep enough tt̄ events.
    """
    from hhcoffea.emulation import generate_arrays

    raw = generate_arrays(process, n_events, seed=17, **options)["Jet"]
    tagged = (raw.hadronFlavour == 5) | (raw.hadronFlavour == 4)
    jets = good_jets(ak.zip({"pt": raw.pt, "eta": raw.eta, "phi": raw.phi, "mass": raw.mass, "btag": tagged}))
    jets = jets[four_tag(jets)]
    pairing = get_pairer("min_dr")(jets)
    x = min_x_wt(jets[pairing.accepted], pairing.higgs_jet_indices[pairing.accepted])
    return float(np.mean(x < c.TOP_VETO_X_WT_MIN)), len(x)


def test_top_veto_removes_ttbar_not_signal():
    ttbar, n_ttbar = vetoed_fraction("ttbar", 40_000)
    signal, n_signal = vetoed_fraction("nonresonant", 4_000, kappa_lambda=1.0)
    # enough events that the binomial errors (about 0.015 and 0.01) are far below the margins
    assert n_ttbar > 800 and n_signal > 800
    assert ttbar > 0.45  # most four-tag tt̄ events hold a top candidate (about 0.59 measured)
    assert signal < 0.15  # few hh events do (about 0.07 measured)
