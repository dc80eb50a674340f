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
