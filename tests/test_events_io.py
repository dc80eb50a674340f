"""Both input layouts map onto one event model; bad inputs fail with one line naming the problem."""

from __future__ import annotations

import awkward as ak
import numpy as np
import pytest
import uproot
from coffea.nanoevents import NanoEventsFactory
from layouts import delphes_arrays, toy_events, write_nanoaod

from hhcoffea.events import AutoSchema, InputError, detect_layout, event_model, events_from_arrays, higgs_bquarks, inspect_file


@pytest.fixture(scope="module")
def toy():
    return toy_events(1500, seed=3)


@pytest.fixture(scope="module")
def nano_file(toy, tmp_path_factory):
    return write_nanoaod(tmp_path_factory.mktemp("nano") / "toy.root", toy)


def nano_events(path, metadata=None):
    return NanoEventsFactory.from_root(
        {path: "Events"}, schemaclass=AutoSchema, metadata=metadata or {"dataset": "toy"}, mode="virtual"
    ).events()


def test_inspect_detects_nanoaod(nano_file):
    info = inspect_file(nano_file)
    assert (info.layout, info.tree, info.n_events, info.has_truth) == ("nanoaod", "Events", 1500, True)


def test_both_layouts_give_the_same_event_model(toy, nano_file):
    nano = event_model(nano_events(nano_file))
    delphes = event_model(events_from_arrays(delphes_arrays(toy), {"dataset": "toy"}))
    assert nano.layout.name == "nanoaod" and delphes.layout.name == "delphes"
    for key in ("jets", "electrons", "muons", "genpart"):
        a, b = getattr(nano, key), getattr(delphes, key)
        assert ak.all(ak.num(a, axis=1) == ak.num(b, axis=1))
        for field in a.fields:
            np.testing.assert_allclose(
                ak.to_numpy(ak.flatten(a[field])).astype(float),
                ak.to_numpy(ak.flatten(b[field])).astype(float),
                err_msg=f"{key}.{field}",
            )
    for key in ("met_pt", "met_phi", "weight"):
        np.testing.assert_allclose(np.asarray(getattr(nano, key)), np.asarray(getattr(delphes, key)), rtol=1e-6)


def test_jets_are_pt_ordered_and_btag_is_bit_zero(toy):
    model = event_model(events_from_arrays(delphes_arrays(toy)))
    pt = model.jets.pt
    assert ak.all(pt[:, 1:] <= pt[:, :-1])
    # the toy's BTag always has bit 1 set; only bit 0 (the card's working point) counts
    n_tagged = ak.sum(model.jets.btag)
    assert n_tagged == int(toy["jets"][1]["btag"].sum())
    assert set(np.unique(ak.to_numpy(ak.flatten(model.jets.flavour)))) <= {0, 4, 5}


def test_higgs_bquarks_carry_their_parent(toy, nano_file):
    b = higgs_bquarks(event_model(nano_events(nano_file)).genpart)
    assert ak.all(ak.num(b, axis=1) == 4)
    # toy: quarks 2,3 from Higgs 0 and quarks 4,5 from Higgs 1
    assert ak.to_list(b.higgs_id[0]) == [0, 0, 1, 1]


def test_detect_layout():
    assert detect_layout(["nJet", "Jet_pt"]).name == "nanoaod"
    assert detect_layout(["Jet_size", "Jet/Jet.PT"]).name == "delphes"
    assert detect_layout(["foo"]) is None


def test_not_root_is_one_line(tmp_path):
    bad = tmp_path / "notes.root"
    bad.write_text("this is not ROOT\n")
    with pytest.raises(InputError) as err:
        inspect_file(bad)
    msg = str(err.value)
    assert "\n" not in msg and str(bad) in msg and "not a readable ROOT file" in msg


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        inspect_file(tmp_path / "nope.root")


def test_wrong_tree_names_both_layouts(tmp_path):
    path = tmp_path / "other.root"
    with uproot.recreate(path) as f:
        f.mktree("Physics", {"x": np.arange(3.0)})
    with pytest.raises(InputError) as err:
        inspect_file(path)
    msg = str(err.value)
    assert "'Events'" in msg and "'Delphes'" in msg and "Physics" in msg and "\n" not in msg


def test_missing_branch_is_named(toy, tmp_path):
    path = write_nanoaod(tmp_path / "nobtag.root", toy, drop=("Jet_btag",))
    with pytest.raises(InputError) as err:
        inspect_file(path)
    msg = str(err.value)
    assert "Jet_btag" in msg and str(path) in msg and "'Events'" in msg and "\n" not in msg


def test_truth_is_optional(toy, tmp_path):
    path = write_nanoaod(tmp_path / "notruth.root", toy, drop=("GenPart",))
    info = inspect_file(path)
    assert info.has_truth is False
    model = event_model(nano_events(path))
    assert model.genpart is None and len(model.weight) == 1500


def test_processor_gives_the_same_histograms_for_both_layouts(toy, nano_file):
    """The Delphes path through coffea (DelphesSchema) and the flat path fill identical histograms."""
    from hhcoffea.pairing import get_pairer
    from hhcoffea.processors.hh4b import HH4bProcessor

    proc = HH4bProcessor(pairers={"min_dr": get_pairer("min_dr"), "chi2": get_pairer("chi2")})
    meta = {"dataset": "toy", "process": "resonant", "xsec_fb": 2.0, "n_generated": 1500}
    nano = proc.process(nano_events(nano_file, meta))
    delphes = proc.process(events_from_arrays(delphes_arrays(toy), meta))
    assert nano["cutflow"]["toy"]["min_dr"]["resonant"]["four_tag"][0] > 50
    for name, h in nano["histograms"].items():
        np.testing.assert_allclose(h.values(flow=True), delphes["histograms"][name].values(flow=True), rtol=1e-6, err_msg=name)
    assert nano["histograms"]["pairing_truth"].sum() > 0
    for pairer, flows in nano["cutflow"]["toy"].items():
        for analysis, steps in flows.items():
            for step, value in steps.items():
                np.testing.assert_allclose(value, delphes["cutflow"]["toy"][pairer][analysis][step], rtol=1e-6)


def test_unsorted_jets_and_empty_events(tmp_path):
    """Jets come out pT-ordered whatever the file order, also next to events without jets."""
    ev = toy_events(4, seed=1)
    counts = np.array([0, 3, 2, 0])
    pt = np.array([30.0, 90.0, 60.0, 50.0, 70.0], dtype=np.float32)
    ev["jets"] = (counts, {k: (pt if k == "pt" else v[: len(pt)]) for k, v in ev["jets"][1].items()})
    model = event_model(nano_events(write_nanoaod(tmp_path / "unsorted.root", ev)))
    assert ak.to_list(model.jets.pt) == [[], [90.0, 60.0, 30.0], [70.0, 50.0], []]
    only = model.jets_of(np.array([False, True, True, False]), jet_mask=np.array([True, True, False, True, True]))
    assert ak.to_list(only.pt) == [[90.0, 30.0], [70.0, 50.0]]
