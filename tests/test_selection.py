"""Cut-based selection pieces against hand calculations and per-event reference loops."""

from __future__ import annotations

import itertools
import math

import awkward as ak
import numpy as np
import pytest

from hhcoffea.pairing import order_by_scalar_pt
from hhcoffea.selection import four_tag, good_jets, higgs_candidates, min_x_wt, resonant_pt_cuts, x_hh
from hhcoffea.truth import correct_higgs_count, match_quarks


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
    from hhcoffea.selection import four_tag_flat

    jets = random_jets(3000, seed=21, n_min=0, n_max=9)
    jets = ak.with_field(jets, jets.pt - 25.0, "pt")  # put some jets below 40 GeV
    counts = ak.to_numpy(ak.num(jets.pt))
    offsets = np.concatenate([[0], np.cumsum(counts)])
    flat = {f: ak.to_numpy(ak.flatten(jets[f])) for f in ("pt", "eta", "btag")}
    got = four_tag_flat(offsets, flat["pt"], flat["eta"], flat["btag"])
    expected = four_tag(good_jets(jets))
    assert got.tolist() == expected.tolist() and 0 < got.sum() < len(got)
