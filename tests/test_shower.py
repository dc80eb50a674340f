"""Showered samples (hhcoffea.emulation.shower): Pythia 8 + FastJet behind the emulation's hard
process write the fast emulation's file layout, with truth, deterministically for a seed."""

from __future__ import annotations

import json

import awkward as ak
import numpy as np
import pytest
import uproot

pytest.importorskip("pythia8mc", reason="the shower tests need the pythia8mc wheel (pip install 'hhcoffea[shower]')")
pytest.importorskip("fastjet", reason="the shower tests need the fastjet wheel (pip install 'hhcoffea[shower]')")

from hhcoffea import constants as C  # noqa: E402
from hhcoffea.columnar.kinematics import delta_r  # noqa: E402
from hhcoffea.emulation import generate  # noqa: E402
from hhcoffea.emulation.processes import HARD_PROCESSES  # noqa: E402
from hhcoffea.emulation.shower import les_houches_events  # noqa: E402

N_EVENTS = 240


def _branches(path):
    with uproot.open(path) as f:
        tree = f["Events"]
        return {k: str(tree[k].interpretation.numpy_dtype if hasattr(tree[k].interpretation, "numpy_dtype")
                       else tree[k].interpretation) for k in tree.keys()}, tree.arrays(library="ak")


@pytest.fixture(scope="module")
def showered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shower")
    meta = generate("nonresonant", N_EVENTS, folder / "hh.root", seed=5, kappa_lambda=1.0, shower="pythia",
                    chunk_size=120)
    again = generate("nonresonant", N_EVENTS, folder / "hh_again.root", seed=5, kappa_lambda=1.0, shower="pythia",
                     chunk_size=120, workers=2)
    fast = generate("nonresonant", 500, folder / "fast.root", seed=5, kappa_lambda=1.0)
    return folder, meta, again, fast


def test_same_layout_and_sidecar_as_the_fast_emulation(showered):
    folder, meta, _, fast = showered
    branches, events = _branches(folder / "hh.root")
    fast_branches, _ = _branches(folder / "fast.root")
    assert branches == fast_branches
    assert len(events) == N_EVENTS
    side = json.loads((folder / "hh.root.json").read_text())
    assert side == meta
    assert side["shower"] == "pythia" and "pythia8mc" in side["generator"]
    assert side["n_generated"] == N_EVENTS and side["xsec_fb"] == pytest.approx(fast["xsec_fb"])
    assert json.loads((folder / "fast.root.json").read_text())["shower"] is None


def test_truth_and_jets_look_like_showered_events(showered):
    folder = showered[0]
    _, ev = _branches(folder / "hh.root")
    # hard process from Pythia's record in the emulation's GenPart order: h h b bbar b bbar
    assert ak.all(ev.nGenPart == 6)
    assert ev.GenPart_pdgId[:, :2].to_list() == [[25, 25]] * N_EVENTS
    assert ev.GenPart_pdgId[:, 2:].to_list() == [[5, -5, 5, -5]] * N_EVENTS
    assert ev.GenPart_genPartIdxMother.to_list() == [[-1, -1, 0, 0, 1, 1]] * N_EVENTS
    # each Higgs is the sum of its b quarks (after the initial-state recoil) at 125 GeV
    px, py, pz, e = to_cartesian_regular(ev, slice(2, 4))
    m = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0))
    assert np.allclose(m, C.HIGGS_MASS, rtol=1e-3)
    # jets: pT-ordered, above 20 GeV, with b-hadron labels on about 2-4 jets of an event
    pt = ev.Jet_pt
    assert ak.all(pt >= C.JET_PT_CONSIDERED)
    assert ak.all(pt[:, 1:] <= pt[:, :-1])
    n_b = ak.to_numpy(ak.sum(ev.Jet_hadronFlavour == 5, axis=1))
    assert 2.0 < n_b.mean() < 4.0
    # the b quarks are inside jets most of the time, but not always (FSR, acceptance, thresholds)
    q_eta = ak.to_numpy(ev.GenPart_eta[:, 2:])
    q_phi = ak.to_numpy(ev.GenPart_phi[:, 2:])
    jets_eta = ak.to_numpy(ak.fill_none(ak.pad_none(ev.Jet_eta, 20, clip=True), np.nan))
    jets_phi = ak.to_numpy(ak.fill_none(ak.pad_none(ev.Jet_phi, 20, clip=True), np.nan))
    dr = delta_r(q_eta[:, :, None], q_phi[:, :, None], jets_eta[:, None, :], jets_phi[:, None, :])
    matched = (np.nan_to_num(dr, nan=9.0) < C.TRUTH_MATCH_DR).any(axis=2)
    assert 0.6 < matched.mean() < 0.97
    # the tag bit follows the flavour: b jets are tagged far more often than light jets
    tag = ak.to_numpy(ak.flatten(ev.Jet_btag & 1))
    flav = ak.to_numpy(ak.flatten(ev.Jet_hadronFlavour))
    central = np.abs(ak.to_numpy(ak.flatten(ev.Jet_eta))) < 2.5
    assert tag[(flav == 5) & central].mean() > 0.5 > 0.1 > tag[(flav == 0) & central].mean()


def to_cartesian_regular(ev, quarks):
    from hhcoffea.columnar.kinematics import to_cartesian

    parts = [to_cartesian(*(ak.to_numpy(ev[f"GenPart_{f}"][:, quarks.start + i]) for f in ("pt", "eta", "phi", "mass")))
             for i in range(2)]
    return tuple(a + b for a, b in zip(*parts))


def test_deterministic_for_a_seed_on_any_number_of_workers(showered, tmp_path):
    folder = showered[0]
    _, first = _branches(folder / "hh.root")
    _, again = _branches(folder / "hh_again.root")  # same seed, two worker processes
    for field in first.fields:
        assert ak.all(first[field] == again[field]) if first[field].ndim == 1 else \
            ak.to_list(first[field]) == ak.to_list(again[field]), field
    generate("nonresonant", 60, tmp_path / "other.root", seed=6, kappa_lambda=1.0, shower="pythia")
    _, other = _branches(tmp_path / "other.root")
    assert ak.to_list(other.Jet_pt[:5]) != ak.to_list(first.Jet_pt[:5])


def test_les_houches_events_conserve_momentum_and_colour():
    rng = np.random.default_rng(1)
    for process, m_x, kappa in (("resonant", 500.0, None), ("qcd", None, None), ("ttbar", None, None)):
        text = les_houches_events(HARD_PROCESSES[process](rng, 3, m_x, kappa), process)
        block = text.split("<event>\n")[1].split("\n</event>")[0].splitlines()
        rows = np.array([line.split() for line in block[1:]], dtype=float)
        status = rows[:, 1]
        incoming, final = rows[status == -1], rows[status == 1]
        assert np.allclose(incoming[:, 6:10].sum(axis=0), final[:, 6:10].sum(axis=0), atol=1e-6), process
        assert np.allclose(incoming[:, 6:8], 0.0)  # the hard system has no pT before the shower
        # every colour line of the final state starts at an incoming anticolour or a final anticolour
        colours = set(final[:, 4][final[:, 4] > 0]) | set(incoming[:, 5][incoming[:, 5] > 0])
        anticolours = set(final[:, 5][final[:, 5] > 0]) | set(incoming[:, 4][incoming[:, 4] > 0])
        assert colours == anticolours, process


def test_resonant_truth_has_two_distinct_higgs_with_their_own_quarks(tmp_path):
    generate("resonant", 60, tmp_path / "x.root", seed=2, m_x=500.0, shower="pythia")
    _, ev = _branches(tmp_path / "x.root")
    assert ev.GenPart_pdgId.to_list() == [[35, 25, 25, 5, -5, 5, -5]] * 60
    assert ev.GenPart_genPartIdxMother.to_list() == [[-1, 0, 0, 1, 1, 2, 2]] * 60
    # X -> h h takes each Higgs once: different b quarks, and each Higgs is the sum of its own
    assert ak.all(ev.GenPart_pt[:, 3] != ev.GenPart_pt[:, 5])
    for first in (3, 5):
        px, py, pz, e = to_cartesian_regular(ev, slice(first, first + 2))
        m = np.sqrt(np.maximum(e**2 - px**2 - py**2 - pz**2, 0))
        assert np.allclose(m, C.HIGGS_MASS, rtol=1e-3)
