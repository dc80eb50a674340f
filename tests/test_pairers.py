"""The built-in pairers (PHYSICS.md "Pairings") on hand-built events with a known answer, and
against a straightforward per-event Python reference on random events."""

from __future__ import annotations

import itertools
import math

import awkward as ak
import numpy as np
import pytest

from hhcoffea.constants import CHI2_HIGGS_MASS, CHI2_HIGGS_MASS_SEED_CODE, DHH_MASS_RATIO, MASS_AGNOSTIC_K
from hhcoffea.pairing import Pairer, PairingResult, get_pairer

# ----------------------------------------------------------------------------------------------
# building events by hand


def jet(pt, eta, phi, mass=0.0, btag=True):
    return {"pt": float(pt), "eta": float(eta), "phi": float(phi), "mass": float(mass), "btag": bool(btag)}


def higgs_jets(pt1, pt2, eta, phi, mass=125.0, btag=(True, True)):
    """Two massless jets at the same eta, symmetric in phi around ``phi``, of invariant mass ``mass``.

    m^2 = 2 pt1 pt2 (cosh deta - cos dphi) with deta = 0.
    """
    dphi = math.acos(1.0 - mass * mass / (2.0 * pt1 * pt2))
    return [jet(pt1, eta, phi - dphi / 2, 0.0, btag[0]), jet(pt2, eta, phi + dphi / 2, 0.0, btag[1])]


def events(*evs):
    """ak.Array of jets from lists of jet dicts; every event must be pT-ordered already."""
    for ev in evs:
        pts = [j["pt"] for j in ev]
        assert pts == sorted(pts, reverse=True), "hand-built events must be pT-ordered"
    arr = ak.Array([list(ev) for ev in evs])
    if len(evs) and not any(len(ev) for ev in evs):  # all empty: give the record its fields
        arr = ak.Array({"pt": [[]] * len(evs)})
    return arr


def pt_sorted(jets):
    return sorted(jets, key=lambda j: -j["pt"])


def as_lists(result: PairingResult):
    """Per event: None if rejected, else the list of candidate jet-index pairs."""
    out = []
    for idx, acc in zip(result.higgs_jet_indices.tolist(), result.accepted.tolist()):
        out.append([list(p) for p in idx] if acc else None)
    return out


def check_rejected_rows(result: PairingResult):
    rejected = ~result.accepted
    assert (result.higgs_jet_indices[rejected] == -1).all()
    assert (result.higgs_jet_indices[result.accepted] >= 0).all()


# ----------------------------------------------------------------------------------------------
# the per-event Python reference (test-only)

CODES = (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)))


def p4(j):
    px, py, pz = j["pt"] * math.cos(j["phi"]), j["pt"] * math.sin(j["phi"]), j["pt"] * math.sinh(j["eta"])
    return px, py, pz, math.sqrt(px * px + py * py + pz * pz + j["mass"] ** 2)


def ref_mass(*js):
    px, py, pz, e = (sum(c) for c in zip(*(p4(j) for j in js)))
    return math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0))


def ref_vector_pt(*js):
    px, py, _, _ = (sum(c) for c in zip(*(p4(j) for j in js)))
    return math.hypot(px, py)


def ref_dr(a, b):
    dphi = (a["phi"] - b["phi"] + math.pi) % (2 * math.pi) - math.pi
    return math.hypot(a["eta"] - b["eta"], dphi)


def ref_tagged(ev, n):
    return [i for i, j in enumerate(ev) if j["btag"]][:n]


def ref_partitions(items):
    """Every split of ``items`` into pairs, first item paired with each later one in turn."""
    if not items:
        yield []
        return
    for i in range(1, len(items)):
        rest = items[1:i] + items[i + 1 :]
        for tail in ref_partitions(rest):
            yield [[items[0], items[i]]] + tail


def ref_min_dr(ev, seeds_bug=False):
    idx = ref_tagged(ev, 4)
    if len(idx) < 4:
        return None
    best = None
    for code, (p, q) in enumerate(CODES):
        a, b = [ev[idx[k]] for k in p], [ev[idx[k]] for k in q]
        if seeds_bug:  # the seeds' per-event version: the pair holding the leading jet
            value = ref_dr(*a)
        else:
            value = ref_dr(*b) if ref_vector_pt(*b) > ref_vector_pt(*a) else ref_dr(*a)
        if best is None or value < best[0]:
            best = (value, code)
    p, q = CODES[best[1]]
    return [[idx[p[0]], idx[p[1]]], [idx[q[0]], idx[q[1]]]]


def ref_lead_subl(ev, p, q, swap_ties=False):
    """(lead, subl) pairs ordered by scalar-sum pT; equal: the first pair leads (``swap_ties``:
    the second, the convention the docstrings do not follow)."""
    sum_p, sum_q = ev[p[0]]["pt"] + ev[p[1]]["pt"], ev[q[0]]["pt"] + ev[q[1]]["pt"]
    if sum_q > sum_p or (swap_ties and sum_q == sum_p):
        return q, p
    return p, q


def ref_dhh_details(ev, swap_ties=False):
    idx = ref_tagged(ev, 4)
    js = [ev[i] for i in idx]
    m4j = ref_mass(*js)
    rows = []
    for code, (p, q) in enumerate(CODES):
        pp, qq = [idx[k] for k in p], [idx[k] for k in q]
        lead, subl = ref_lead_subl(ev, pp, qq, swap_ties)
        drl, drs = ref_dr(ev[lead[0]], ev[lead[1]]), ref_dr(ev[subl[0]], ev[subl[1]])
        low = (360 / m4j - 0.5 < drl < 653 / m4j + 0.475) and (235 / m4j < drs < 875 / m4j + 0.35)
        high = 0 < drl < 1 and 0 < drs < 1
        r = 120 / 110
        d = abs(ref_mass(ev[lead[0]], ev[lead[1]]) - r * ref_mass(ev[subl[0]], ev[subl[1]])) / math.sqrt(1 + r * r)
        rows.append({"code": code, "m4j": m4j, "low": low, "high": high,
                     "accepted": low if m4j < 1250 else high, "d": d, "pairs": [pp, qq]})
    return rows


def ref_dhh(ev, swap_ties=False):
    if len(ref_tagged(ev, 4)) < 4:
        return None
    best = None
    for row in ref_dhh_details(ev, swap_ties):
        if row["accepted"] and (best is None or row["d"] < best["d"]):
            best = row
    return None if best is None else best["pairs"]


def ref_mass_agnostic(ev, order="scalar_pt"):
    idx = ref_tagged(ev, 4)
    if len(idx) < 4:
        return None
    best = None
    for p, q in CODES:
        pp, qq = [idx[k] for k in p], [idx[k] for k in q]
        lead, subl = ref_lead_subl(ev, pp, qq, swap_ties=order == "swap_ties")
        if order == "reversed":
            lead, subl = subl, lead
        d = abs(ref_mass(*(ev[i] for i in lead)) - (125 / 120) * ref_mass(*(ev[i] for i in subl)))
        if best is None or d < best[0]:
            best = (d, [pp, qq])
    return best[1]


def ref_chi2_value(ev, pairs, higgs_mass=CHI2_HIGGS_MASS):
    return sum((ref_mass(ev[a], ev[b]) - higgs_mass) ** 2 for a, b in pairs)


def ref_chi2(ev, n_higgs=2, higgs_mass=CHI2_HIGGS_MASS, exhaustive=False, max_btagged=8):
    k = 2 * n_higgs
    if exhaustive:
        tagged = ref_tagged(ev, max_btagged)
        if len(tagged) < k:
            return None
        subsets = [list(s) for s in itertools.combinations(tagged, k)]
    else:
        order = [i for i, j in enumerate(ev) if j["btag"]] + [i for i, j in enumerate(ev) if not j["btag"]]
        if len(order) < k:
            return None
        subsets = [order[:k]]
    pair_mass = {}
    best = None
    for subset in subsets:
        for pairing in ref_partitions(subset):
            value = 0.0
            for a, b in pairing:
                if (a, b) not in pair_mass:
                    pair_mass[(a, b)] = ref_mass(ev[a], ev[b])
                value += (pair_mass[(a, b)] - higgs_mass) ** 2
            if best is None or value < best[0]:
                best = (value, pairing)
    return best[1]


# ----------------------------------------------------------------------------------------------
# fixtures: a known HH event and random events


@pytest.fixture(scope="module")
def hh_event():
    """Two 125-GeV Higgs decays back to back; pT order interleaves them: the truth is code 1.

    H1 -> (200, 100) at phi 0, H2 -> (150, 60) at phi pi: j0 = H1, j1 = H2, j2 = H1, j3 = H2.
    """
    ev = pt_sorted(higgs_jets(200, 100, 0.0, 0.0) + higgs_jets(150, 60, 0.5, math.pi))
    assert ref_mass(ev[0], ev[2]) == pytest.approx(125.0) and ref_mass(ev[1], ev[3]) == pytest.approx(125.0)
    return ev


def random_events(n, seed, max_jets=9, p_tag=0.75):
    rng = np.random.default_rng(seed)
    evs = []
    for _ in range(n):
        k = int(rng.integers(0, max_jets + 1))
        pts = np.sort(rng.uniform(20.0, 400.0, k))[::-1]
        evs.append([
            jet(pts[i], rng.uniform(-2.5, 2.5), rng.uniform(-math.pi, math.pi), rng.uniform(0.0, 30.0),
                rng.random() < p_tag)
            for i in range(k)
        ])
    return evs


@pytest.fixture(scope="module")
def random_sample():
    evs = random_events(2500, seed=20240611)
    return evs, events(*evs)


# ----------------------------------------------------------------------------------------------
# registry-facing basics


@pytest.mark.parametrize(
    ("name", "cls_name"),
    [("min_dr", "MinDeltaRPairer"), ("dhh", "DeltaRMinDhhPairer"), ("chi2", "Chi2Pairer"),
     ("mass_agnostic", "MassAgnosticPairer")],
)
def test_builtins_registered_with_names_and_docstrings(name, cls_name):
    pairer = get_pairer(name)
    assert isinstance(pairer, Pairer)
    assert type(pairer).__name__ == cls_name
    assert pairer.name == name
    assert pairer.n_higgs == 2
    with pytest.raises(TypeError, match="bogus_option"):
        get_pairer(name, bogus_option=1)


@pytest.mark.parametrize("name", ["min_dr", "dhh", "chi2", "mass_agnostic"])
def test_pairs_the_four_leading_btagged_jets(random_sample, name):
    """What every built-in docstring states: the candidates are the four highest-pT b-tagged jets;
    with fewer tags, min_dr, dhh and mass_agnostic reject the event and chi2 fills in with the
    highest-pT untagged jets (b-tag then pT)."""
    evs, arr = random_sample
    res = get_pairer(name)(arr)
    n_used = {"fill": 0, "tagged": 0}
    for ev, chosen, accepted in zip(evs, res.higgs_jet_indices.tolist(), res.accepted.tolist()):
        tagged = ref_tagged(ev, 4)
        untagged = [i for i, j in enumerate(ev) if not j["btag"]]
        if name == "chi2":
            expected = (tagged + untagged)[:4] if len(ev) >= 4 else None
        else:
            expected = tagged if len(tagged) == 4 else None
        if expected is None:
            assert not accepted
            continue
        if not accepted:  # only dhh rejects four-tag events (no pairing inside the windows)
            assert name == "dhh"
            continue
        assert sorted(np.ravel(chosen).tolist()) == sorted(expected)
        n_used["tagged" if len(tagged) == 4 else "fill"] += 1
    # random kinematics rarely fall inside dhh's windows: 52 of the 1170 four-tag events
    assert n_used["tagged"] > (40 if name == "dhh" else 1000) and (n_used["fill"] > 100) == (name == "chi2")


@pytest.mark.parametrize("name", ["min_dr", "dhh", "chi2", "mass_agnostic"])
def test_no_events_and_events_without_jets(name):
    pairer = get_pairer(name)
    empty = pairer(events(*[[jet(50, 0, 0)]])[:0])
    assert empty.higgs_jet_indices.shape == (0, 2, 2) and empty.accepted.shape == (0,)
    res = pairer(events([], [jet(80, 0, 0), jet(70, 1, 1)], []))
    assert not res.accepted.any()
    assert (res.higgs_jet_indices == -1).all()


# ----------------------------------------------------------------------------------------------
# min-ΔR


def test_min_dr_known_pairing_exactly_four_jets(hh_event):
    res = get_pairer("min_dr")(events(hh_event))
    assert as_lists(res) == [[[0, 2], [1, 3]]]


def test_min_dr_follows_the_definition_not_the_seeds_bug():
    # j0+j3 is the closest pair holding j0 (the seeds' per-event code picks code 2), but in that
    # pairing j1+j2 has the higher vector pT; the higher-pT pair of code 1 (j1 j3) is closest.
    ev = [jet(100, 0, 0.0), jet(95, 0, 1.0), jet(90, 0, 2.2), jet(40, 0, 0.3)]
    assert ref_min_dr(ev, seeds_bug=True) == [[0, 3], [1, 2]]
    assert ref_min_dr(ev) == [[0, 2], [1, 3]]
    assert as_lists(get_pairer("min_dr")(events(ev))) == [[[0, 2], [1, 3]]]


def test_min_dr_exact_ties_keep_lower_code():
    # codes 0 and 1 tie: higher-pT pairs (j0 j1) and (j0 j2) both have dR = 0.5 exactly
    tie01 = [jet(200, 0, 0), jet(100, 0.5, 0), jet(90, -0.5, 0), jet(50, 0, 2)]
    # codes 1 and 2 tie: (j0 j2) and (j0 j3) both dR = 0.5; code 0's higher pair (j0 j1) has dR 2
    tie12 = [jet(200, 0, 0), jet(100, 0, 2), jet(90, 0.5, 0), jet(50, -0.5, 0)]
    res = get_pairer("min_dr")(events(tie01, tie12))
    assert as_lists(res) == [[[0, 1], [2, 3]], [[0, 2], [1, 3]]]


def test_min_dr_equal_vector_pt_takes_the_pair_holding_j0():
    # j1 and j3 mirror j0 and j2 in phi (phi -> -phi, equal pT), so in codes 1 and 2 both pairs
    # have bit-identical vector pT; the docstring: the first-listed pair (holding j0) is then the
    # higher-pT pair. Code 1's first pair is close, its second far: code 1 wins only that way ...
    first_close = [jet(100, 0.0, 0.2), jet(100, 2.0, -0.2), jet(60, 0.3, 0.5), jet(60, 0.0, -0.5)]
    # ... and here code 2's first pair (j0 j3) wins, where the second pairs would make code 1 win
    first_far = [jet(100, 0.0, 0.2), jet(100, 1.0, -0.2), jet(60, 2.0, 0.5), jet(60, 0.4, -0.5)]
    for ev in (first_close, first_far):
        for (a, b), (c, d) in CODES[1:]:
            assert ref_vector_pt(ev[a], ev[b]) == ref_vector_pt(ev[c], ev[d])
    # the other convention, by hand: the smallest dR over the pairs listed second where tied
    second = {0: lambda ev: ref_dr(ev[0], ev[1]), 1: lambda ev: ref_dr(ev[1], ev[3]), 2: lambda ev: ref_dr(ev[1], ev[2])}
    assert [min(range(3), key=lambda k: second[k](ev)) for ev in (first_close, first_far)] == [2, 1]
    expected = [[[0, 2], [1, 3]], [[0, 3], [1, 2]]]
    assert [ref_min_dr(ev) for ev in (first_close, first_far)] == expected
    assert as_lists(get_pairer("min_dr")(events(first_close, first_far))) == expected


def test_min_dr_untagged_interleaved_and_too_few_tags(hh_event):
    h = [dict(j) for j in hh_event]  # j0 H1, j1 H2, j2 H1, j3 H2
    untagged = [jet(180, 1.0, 1.5, 10, False), jet(120, -1.0, -1.5, 10, False)]
    extra_tag = jet(30, 2.0, 2.0, 5, True)  # a fifth tagged jet, softest: ignored
    ev = pt_sorted(h + untagged + [extra_tag])
    # order: H1(200), U(180), H2(150), U(120), H1(100), H2(60), tag(30)
    assert [j["btag"] for j in ev] == [True, False, True, False, True, True, True]
    three_tags = [dict(j) for j in ev]
    three_tags[4]["btag"] = three_tags[6]["btag"] = False
    # and the soft extra tag takes over when a Higgs jet loses its tag
    four_tags = [dict(j) for j in ev]
    four_tags[4]["btag"] = False
    res = get_pairer("min_dr")(events(ev, three_tags, hh_event, four_tags))
    assert as_lists(res)[:3] == [[[0, 4], [2, 5]], None, [[0, 2], [1, 3]]]
    assert as_lists(res)[3] == ref_min_dr(four_tags)
    assert set(np.ravel(res.higgs_jet_indices[3])) == {0, 2, 5, 6}
    check_rejected_rows(res)


def test_min_dr_accepts_integer_btag_and_float32():
    ev = [jet(100, 0, 0.0), jet(95, 0, 1.0), jet(90, 0, 2.2), jet(40, 0, 0.3)]
    arr = events(ev, ev)
    arr = ak.zip({
        "pt": ak.values_astype(arr.pt, np.float32), "eta": ak.values_astype(arr.eta, np.float32),
        "phi": ak.values_astype(arr.phi, np.float32), "mass": ak.values_astype(arr.mass, np.float32),
        "btag": ak.Array([[1, 1, 1, 1], [1, 0, 1, 1]]),
    })
    assert as_lists(get_pairer("min_dr")(arr)) == [[[0, 2], [1, 3]], None]


# ----------------------------------------------------------------------------------------------
# ΔR windows + min D_hh

# jets found by a scan of random kinematics, premises re-checked below with the reference
DHH_TWO_ACCEPTED = [jet(396.5, 0.31, 0.91, 5.5), jet(308.1, 0.19, 2.27, 18.4), jet(173.3, 0.25, 1.21, 18.9),
                    jet(87.7, 0.06, 1.95, 7.2)]
DHH_HIGH_M4J = [jet(1114.6, 0.65, 1.44, 10.2), jet(973.8, 1.3, 2.17, 11.6), jet(915.5, -0.04, -2.35, 5.6),
                jet(121.2, -0.9, -2.04, 12.5)]
DHH_HIGH_M4J_LOW_WINDOWS_ONLY = [jet(1174.5, 0.02, -1.94, 6.2), jet(396.9, 1.24, -2.79, 16.6),
                                 jet(286.2, 0.87, -1.57, 9.9), jet(161.1, 0.48, -2.13, 15.4)]
MIRROR_TIE = [jet(200, 0, 0, 10), jet(120, 0.8, 0.1, 10), jet(120, -0.8, 0.1, 10), jet(60, 0, 0.5, 10)]
DHH_OUTSIDE = [jet(300, 0, 0), jet(250, 0, 2.0), jet(200, 0.3, -2.0), jet(150, -1.5, 3.0)]


def test_dhh_known_pairing(hh_event):
    rows = ref_dhh_details(hh_event)
    assert rows[0]["m4j"] < 1250
    assert [r["accepted"] for r in rows] == [False, True, False]
    assert as_lists(get_pairer("dhh")(events(hh_event))) == [[[0, 2], [1, 3]]]


def test_dhh_windows_beat_smaller_dhh():
    rows = ref_dhh_details(DHH_TWO_ACCEPTED)
    assert rows[0]["m4j"] < 1250
    assert [r["accepted"] for r in rows] == [True, False, True]
    assert rows[1]["d"] < rows[2]["d"] < rows[0]["d"]  # the global minimum is outside the windows
    assert as_lists(get_pairer("dhh")(events(DHH_TWO_ACCEPTED))) == [[[0, 3], [1, 2]]]


def test_dhh_above_1250_uses_the_unit_windows():
    accepted = ref_dhh_details(DHH_HIGH_M4J)
    assert accepted[0]["m4j"] > 1250
    assert [r["high"] for r in accepted] == [True, False, False]
    assert not any(r["low"] for r in accepted)  # the low-m4j formula would reject it
    rejected = ref_dhh_details(DHH_HIGH_M4J_LOW_WINDOWS_ONLY)
    assert rejected[0]["m4j"] > 1250
    assert not any(r["high"] for r in rejected) and rejected[1]["low"]  # low formula would accept
    res = get_pairer("dhh")(events(DHH_HIGH_M4J, DHH_HIGH_M4J_LOW_WINDOWS_ONLY))
    assert as_lists(res) == [[[0, 1], [2, 3]], None]
    check_rejected_rows(res)


def test_dhh_outside_all_windows_and_too_few_tags_rejected(hh_event):
    assert not any(r["accepted"] for r in ref_dhh_details(DHH_OUTSIDE))
    three = [dict(j) for j in hh_event]
    three[1]["btag"] = False
    res = get_pairer("dhh")(events(DHH_OUTSIDE, three, hh_event))
    assert res.accepted.tolist() == [False, False, True]
    check_rejected_rows(res)


def test_dhh_ties_keep_lower_code():
    # mirror symmetric: j1 and j2 are mirror images (eta -> -eta) with equal pT, so codes 0 and 1
    # are the same pairing up to the mirror and give bit-identical dR, masses and D_hh
    rows = ref_dhh_details(MIRROR_TIE)
    assert [r["accepted"] for r in rows] == [True, True, False]
    assert rows[0]["d"] == rows[1]["d"]
    assert as_lists(get_pairer("dhh")(events(MIRROR_TIE))) == [[[0, 1], [2, 3]]]


# code 2, (j0 j3)(j1 j2), has equal scalar sums 100 + 40 = 90 + 50: which pair leads decides
SCALAR_TIE_DHH = {
    2: [jet(100, -0.02, -1.72, 5), jet(90, 0.09, 1.67, 5), jet(50, -0.08, -1.33, 5), jet(40, 0.16, 2.48, 5)],
    None: [jet(100, 0.51, 2.42, 5), jet(90, 1.21, -2.41, 5), jet(50, 1.55, -0.74, 5), jet(40, 1.62, -0.26, 5)],
    0: [jet(100, 0.87, 2.33, 5), jet(90, -0.72, 1.4, 5), jet(50, 0.77, -0.55, 5), jet(40, 0.15, -0.09, 5)],
}


def test_dhh_equal_scalar_pt_first_pair_leads():
    """Docstring: on exact scalar-sum equality the first-listed pair is lead (windows and D_hh)."""
    expected = []
    for code, ev in SCALAR_TIE_DHH.items():
        answer = None if code is None else [list(p) for p in ref_dhh_details(ev)[code]["pairs"]]
        assert ref_dhh(ev) == answer
        assert ref_dhh(ev, swap_ties=True) != answer  # the other convention differs on each event
        expected.append(answer)
    assert as_lists(get_pairer("dhh")(events(*SCALAR_TIE_DHH.values()))) == expected


# ----------------------------------------------------------------------------------------------
# χ²


def test_chi2_options_and_instances():
    hhh = get_pairer("chi2", n_higgs=3, higgs_mass=CHI2_HIGGS_MASS_SEED_CODE, exhaustive=True)
    assert hhh.n_higgs == 3 and hhh.higgs_mass == CHI2_HIGGS_MASS_SEED_CODE and hhh.exhaustive
    default = get_pairer("chi2")
    assert default.n_higgs == 2 and default.higgs_mass == CHI2_HIGGS_MASS and not default.exhaustive
    assert type(default).n_higgs == 2  # the instance attribute did not leak into the class
    with pytest.raises(TypeError, match="n_higs"):
        get_pairer("chi2", n_higs=3)
    with pytest.raises(ValueError, match="n_higgs"):
        get_pairer("chi2", n_higgs=4)
    with pytest.raises(ValueError, match="max_btagged"):
        get_pairer("chi2", n_higgs=3, exhaustive=True, max_btagged=5)


def test_chi2_hh_known_pairing_and_btag_then_pt(hh_event):
    # an untagged hard jet (130) sits among the Higgs jets: b-tag-then-pT ordering skips it and
    # finds (j0 j3)(j1 j4); plain pT order would take it instead of the tagged j4
    with_untagged = pt_sorted([dict(j) for j in hh_event] + [jet(130, -2.0, 2.0, 15.0, False)])
    assert [j["btag"] for j in with_untagged] == [True, True, False, True, True]
    # only three tags: the highest-pT untagged jet (a Higgs jet, 60) fills in by default;
    # the exhaustive search over tagged jets rejects the event
    fill_in = [dict(j) for j in hh_event] + [jet(50, -2.0, 2.0, 15.0, False)]
    fill_in[3]["btag"] = False
    res = get_pairer("chi2")(events(hh_event, with_untagged, fill_in))
    assert as_lists(res) == [[[0, 2], [1, 3]], [[0, 3], [1, 4]], [[0, 2], [1, 3]]]
    exhaustive = get_pairer("chi2", exhaustive=True)(events(hh_event, with_untagged, fill_in))
    assert as_lists(exhaustive) == [[[0, 2], [1, 3]], [[0, 3], [1, 4]], None]


def test_chi2_hhh_three_known_pairs():
    ev = pt_sorted(higgs_jets(300, 80, 0.2, 0.0) + higgs_jets(250, 120, -0.8, 2.1) + higgs_jets(200, 150, 1.1, 4.2))
    # j0 H1, j1 H2, j2 H3, j3 H3, j4 H2, j5 H1
    truth = [[0, 5], [1, 4], [2, 3]]
    assert ref_chi2_value(ev, truth) < 1e-9
    res = get_pairer("chi2", n_higgs=3)(events(ev, ev[:5]))
    assert res.higgs_jet_indices.shape == (2, 3, 2)
    assert as_lists(res) == [truth, None]
    assert as_lists(get_pairer("chi2", n_higgs=3, exhaustive=True)(events(ev))) == [truth]


def test_chi2_exhaustive_reaches_beyond_the_top_four():
    h1 = higgs_jets(300, 90, 0.0, 0.0)
    h2 = higgs_jets(200, 50, 0.7, 3.0)
    junk = [jet(250, -1.5, 1.5, 10), jet(100, 2.0, -1.7, 10), jet(45, -0.4, 1.0, 8, False)]
    ev = pt_sorted(h1 + h2 + junk)
    # order: H1(300) j0, J(250) j1, H2(200) j2, J(100) j3, H1(90) j4, H2(50) j5, untagged(45) j6
    truth = [[0, 4], [2, 5]]
    assert ref_chi2_value(ev, truth) < 1e-9
    top4 = get_pairer("chi2")(events(ev))
    assert as_lists(top4)[0] != truth and set(np.ravel(top4.higgs_jet_indices)) == {0, 1, 2, 3}
    assert as_lists(get_pairer("chi2", exhaustive=True)(events(ev))) == [truth]
    capped = get_pairer("chi2", exhaustive=True, max_btagged=5)(events(ev))  # j5 out of reach
    assert as_lists(capped)[0] != truth and as_lists(capped)[0] is not None


def test_chi2_exact_tie_keeps_lower_code():
    # j1 and j2 mirror images (equal pT, eta -> -eta): codes 0 and 1 have identical chi2
    ev = [jet(200, 0, 0, 10), jet(120, 0.6, 0.9, 10), jet(120, -0.6, 0.9, 10), jet(60, 0, 2.0, 10)]
    vals = [ref_chi2_value(ev, [[a, b], [c, d]]) for (a, b), (c, d) in CODES]
    assert vals[0] == vals[1] < vals[2]
    assert as_lists(get_pairer("chi2")(events(ev))) == [[[0, 1], [2, 3]]]
    assert as_lists(get_pairer("chi2", exhaustive=True)(events(ev))) == [[[0, 1], [2, 3]]]


# ----------------------------------------------------------------------------------------------
# mass-agnostic D

MASS_AGNOSTIC_ORDER_MATTERS = [jet(251.2, -0.56, -2.22, 6.2), jet(96.3, -1.32, 1.2, 5.7),
                               jet(96.1, -1.25, -0.43, 13.7), jet(61.2, -0.56, -2.47, 16.6)]


def test_mass_agnostic_known_pairing(hh_event):
    assert as_lists(get_pairer("mass_agnostic")(events(hh_event))) == [[[0, 2], [1, 3]]]


def test_mass_agnostic_orders_by_scalar_pt():
    ev = MASS_AGNOSTIC_ORDER_MATTERS
    assert ref_mass_agnostic(ev) == [[0, 2], [1, 3]]
    assert ref_mass_agnostic(ev, order="reversed") == [[0, 3], [1, 2]]  # k on the other candidate
    assert MASS_AGNOSTIC_K == pytest.approx(125 / 120) and DHH_MASS_RATIO == pytest.approx(120 / 110)
    assert as_lists(get_pairer("mass_agnostic")(events(ev))) == [[[0, 2], [1, 3]]]


def ref_mass_agnostic_d(ev, code):
    p, q = CODES[code]
    lead, subl = ref_lead_subl(ev, p, q)
    return abs(ref_mass(ev[lead[0]], ev[lead[1]]) - (125 / 120) * ref_mass(ev[subl[0]], ev[subl[1]]))


def test_mass_agnostic_equal_scalar_pt_first_pair_is_b1b2():
    """Docstring: exact scalar-pT equality makes the first-listed pair (b1, b2), the one k does
    not multiply; code 2 has sums 100 + 40 = 90 + 50."""
    wins = [jet(100, -1.41, -1.85, 5), jet(90, 1.28, 1.81, 5), jet(50, 0.73, -1.85, 5), jet(40, 1.15, -2.51, 5)]
    loses = [jet(100, 0.98, -1.93, 5), jet(90, -1.49, 0.76, 5), jet(50, 1.23, -1.82, 5), jet(40, 1.33, -1.54, 5)]
    assert [ref_mass_agnostic(ev) for ev in (wins, loses)] == [[[0, 3], [1, 2]], [[0, 2], [1, 3]]]
    assert [ref_mass_agnostic(ev, order="swap_ties") for ev in (wins, loses)] == [[[0, 2], [1, 3]], [[0, 3], [1, 2]]]
    assert as_lists(get_pairer("mass_agnostic")(events(wins, loses))) == [[[0, 3], [1, 2]], [[0, 2], [1, 3]]]


def test_mass_agnostic_tie_and_rejection(hh_event):
    d = [ref_mass_agnostic_d(MIRROR_TIE, code) for code in range(3)]
    assert d[0] == d[1] < d[2]
    few = [dict(j) for j in hh_event]
    few[3]["btag"] = False
    res = get_pairer("mass_agnostic")(events(MIRROR_TIE, few))
    assert as_lists(res) == [[[0, 1], [2, 3]], None]
    check_rejected_rows(res)


# ----------------------------------------------------------------------------------------------
# vectorised == per-event reference on random events


@pytest.mark.parametrize(
    ("name", "options", "reference"),
    [
        ("min_dr", {}, ref_min_dr),
        ("dhh", {}, ref_dhh),
        ("mass_agnostic", {}, ref_mass_agnostic),
        ("chi2", {}, ref_chi2),
        ("chi2", {"higgs_mass": 100.0}, lambda ev: ref_chi2(ev, higgs_mass=100.0)),
        ("chi2", {"n_higgs": 3}, lambda ev: ref_chi2(ev, n_higgs=3)),
        ("chi2", {"exhaustive": True}, lambda ev: ref_chi2(ev, exhaustive=True)),
        ("chi2", {"exhaustive": True, "max_btagged": 5}, lambda ev: ref_chi2(ev, exhaustive=True, max_btagged=5)),
        ("chi2", {"n_higgs": 3, "exhaustive": True, "higgs_mass": CHI2_HIGGS_MASS_SEED_CODE},
         lambda ev: ref_chi2(ev, n_higgs=3, exhaustive=True, higgs_mass=CHI2_HIGGS_MASS_SEED_CODE)),
    ],
    ids=["min_dr", "dhh", "mass_agnostic", "chi2", "chi2-m100", "chi2-hhh", "chi2-exh", "chi2-exh-max5",
         "chi2-hhh-exh"],
)
def test_matches_per_event_reference(random_sample, name, options, reference):
    evs, arr = random_sample
    res = get_pairer(name, **options)(arr)
    check_rejected_rows(res)
    expected = [reference(ev) for ev in evs]
    got = as_lists(res)
    mismatches = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    assert not mismatches, f"{len(mismatches)} events differ, first {mismatches[:5]}"
    n_accepted = sum(e is not None for e in expected)
    assert 0 < n_accepted < len(evs)  # the sample exercises both outcomes
