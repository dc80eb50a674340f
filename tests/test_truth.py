"""Truth matching conventions of PHYSICS.md "Objects and preselection"."""

from __future__ import annotations

import awkward as ak
import numpy as np

from hhcoffea.columnar.truth import correct_higgs_count, match_quarks


def test_quark_with_two_jets_in_its_cone_makes_the_event_unreconstructable():
    # event 0: each quark sits on its own jet; event 1: a second jet lies 0.2 from quark 0
    jets = ak.zip({
        "pt": [[100, 90, 80, 70], [100, 90, 80, 70, 30]],
        "eta": [[0.0, 1.0, -1.0, 2.0], [0.0, 1.0, -1.0, 2.0, 0.2]],
        "phi": [[0.0, 1.0, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0, 0.0]],
        "mass": [[5.0] * 4, [5.0] * 5],
    })
    bquarks = ak.zip({"eta": [[0.0, -1.0, 1.0, 2.0]] * 2, "phi": [[0.0, 2.0, 1.0, 3.0]] * 2,
                      "higgs_id": [[0, 0, 1, 1]] * 2})
    matched, hid, ambiguous = match_quarks(jets, bquarks, n_higgs=2)
    assert matched.tolist() == [[0, 2, 1, 3], [0, 2, 1, 3]]  # nearest jet wins in both
    assert ambiguous.tolist() == [False, True]
    pairing = np.array([[[0, 2], [1, 3]]] * 2)
    n_correct, full = correct_higgs_count(pairing, matched, hid, ambiguous)
    assert n_correct.tolist() == [2, 2]
    assert full.tolist() == [True, False]


def test_no_events_and_events_without_jets():
    empty = ak.zip({"pt": [[]], "eta": [[]], "phi": [[]], "mass": [[]]})[:0]
    q = ak.zip({"eta": [[0.0] * 4], "phi": [[0.0] * 4], "higgs_id": [[0, 0, 1, 1]]})
    matched, hid, ambiguous = match_quarks(empty, q[:0], n_higgs=2)
    assert matched.shape == (0, 4) and ambiguous.shape == (0,)
    jetless = ak.zip({"pt": [[]], "eta": [[]], "phi": [[]], "mass": [[]]})
    matched, _, ambiguous = match_quarks(jetless, q, n_higgs=2)
    assert matched.tolist() == [[-1] * 4] and ambiguous.tolist() == [False]


def test_processor_matches_quarks_among_all_jets_above_20_gev():
    """A b quark whose jet has 30 GeV (below the 40 GeV object cut): the event is reconstructable
    (PHYSICS.md matches among all jets with pT >= 20), but no pairer of the selected jets can get
    that Higgs right; the seeds' jet count (5) differs from the selected one (4)."""
    from hhcoffea.events import events_from_arrays
    from hhcoffea.pairing import get_pairer
    from hhcoffea.processors.hh4b import HH4bProcessor
    from hhcoffea.workflow.output import pairing_efficiency

    n = 3
    jet = {"pt": [200.0, 150.0, 100.0, 80.0, 30.0], "eta": [0.0, 0.0, 1.5, -1.5, 1.5], "phi": [0.0, 0.5, 2.5, -2.5, 3.0]}
    quark_eta, quark_phi = [0.0, 0.0, 1.5, 1.5], [0.0, 0.5, 2.5, 3.0]  # Higgs 0 -> j0 j1, Higgs 1 -> j2 j4
    arrays = {
        "nJet": np.full(n, 5),
        "Jet_pt": ak.Array([jet["pt"]] * n), "Jet_eta": ak.Array([jet["eta"]] * n), "Jet_phi": ak.Array([jet["phi"]] * n),
        "Jet_mass": ak.Array([[10.0] * 5] * n), "Jet_btag": ak.Array([[1] * 5] * n),
        "Jet_hadronFlavour": ak.Array([[5] * 5] * n),
        "nGenPart": np.full(n, 6),
        "GenPart_pt": ak.Array([[300.0, 200.0, 150.0, 100.0, 90.0, 50.0]] * n),
        "GenPart_eta": ak.Array([[0.0, 1.5, *quark_eta]] * n), "GenPart_phi": ak.Array([[0.0, 2.7, *quark_phi]] * n),
        "GenPart_mass": ak.Array([[125.0, 125.0, 4.8, 4.8, 4.8, 4.8]] * n),
        "GenPart_pdgId": ak.Array([[25, 25, 5, -5, 5, -5]] * n),
        "GenPart_status": ak.Array([[22, 22, 23, 23, 23, 23]] * n),
        "GenPart_genPartIdxMother": ak.Array([[-1, -1, 0, 0, 1, 1]] * n),
        "MET_pt": np.zeros(n), "MET_phi": np.zeros(n), "genWeight": np.ones(n),
        "nElectron": np.zeros(n, dtype=int), "Electron_pt": ak.Array([[]] * n), "Electron_eta": ak.Array([[]] * n),
        "Electron_phi": ak.Array([[]] * n), "Electron_charge": ak.Array([[]] * n),
        "nMuon": np.zeros(n, dtype=int), "Muon_pt": ak.Array([[]] * n), "Muon_eta": ak.Array([[]] * n),
        "Muon_phi": ak.Array([[]] * n), "Muon_charge": ak.Array([[]] * n),
    }
    events = events_from_arrays(arrays, {"dataset": "toy", "process": "resonant"})
    out = HH4bProcessor(pairers={"min_dr": get_pairer("min_dr")}).process(events)
    eff = pairing_efficiency(out["histograms"]["pairing_truth"])["toy"]["min_dr"]
    assert eff["all"]["reconstructable_fraction"] == 1.0
    assert eff["all"]["event_efficiency"] == 0.0 and eff["all"]["higgs_efficiency"] == 0.5
    assert eff["selected"]["4"]["events"] == n and eff["all_jets_20"]["5"]["events"] == n
