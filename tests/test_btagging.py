"""b-tagging as data: the working-point table, one bit per working point in the emulation,
efficiency maps (measured through coffea's Runner, written and read with correctionlib), scale
factors by method 1a, truth tagging, a NanoAOD discriminant, and jobs without b-tagging."""

from __future__ import annotations

import itertools
import json
import subprocess

import awkward as ak
import correctionlib
import numpy as np
import pytest
import uproot
import yaml

from hhcoffea import constants as C
from hhcoffea.corrections.btagging import efficiency_maps, emulation_bits, load_working_points
from hhcoffea.corrections.btagging.maps import DEFAULT_SF_UNCERTAINTY, default_scale_factor_path
from hhcoffea.corrections.btagging.truth_tag import draw_tagged, event_uniforms, probability_at_least
from hhcoffea.emulation import generate_arrays
from hhcoffea.workflow.btag import measure_efficiency
from hhcoffea.workflow.job import JobError, load_job
from hhcoffea.workflow.runner import ensure_samples, resolve_datasets, run_job

N_EVENTS = {"X500": 30_000, "ttbar": 30_000}


def _write_job(directory, name, **config) -> str:
    spec = {
        "name": name,
        "output": str(directory / f"out_{name}"),
        "samples": {"directory": str(directory / "data"), "seed": 21, "generate": {
            "X500": {"process": "resonant", "m_x": 500.0, "n_events": N_EVENTS["X500"]},
            "ttbar": {"process": "ttbar", "n_events": N_EVENTS["ttbar"]},
        }},
        "pairers": {"min_dr": {}},
        "histograms": {"m_hh": {"bins": {"n": 10, "lo": 200, "hi": 1200}}},
        "executor": {"name": "iterative", "chunksize": 100_000},
    }
    spec.update(config)
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _run(directory, name, **config) -> dict:
    return run_job(load_job(_write_job(directory, name, **config)), status=False).output


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """Generated samples and efficiency maps of both emulated working points (measured once)."""
    directory = tmp_path_factory.mktemp("btag")
    job = load_job(_write_job(directory, "measure", btagging={"working_point": "MV2c10_70", "efficiency": "eff.json"},
                              datasets={"ttbar_dl1r": {"sample": "ttbar", "btagging": {"working_point": "DL1r_77"}},
                                        "X500_dl1r": {"sample": "X500", "btagging": {"working_point": "DL1r_77"}}}))
    datasets = resolve_datasets(job, ensure_samples(job))
    result = measure_efficiency(job, datasets, status=False)
    return directory, result


def _yield(out, dataset, region="four_tag", systematic="nominal"):
    h = out["histograms"]["m_hh"][{"dataset": dataset, "region": region, "pairer": "min_dr", "systematic": systematic}]
    total = h.sum(flow=True)
    return total.value, np.sqrt(total.variance)


# --- the table and the emulation ---------------------------------------------------------------
def test_working_point_table():
    table = load_working_points()
    for name, numbers in C.BTAG_WORKING_POINTS.items():  # PHYSICS.md numbers live in constants only
        wp = table[name]
        assert (wp.b_efficiency, wp.c_rejection, wp.light_rejection) == (
            numbers["b_efficiency"], numbers["c_rejection"], numbers["light_rejection"])
    assert emulation_bits() == {"MV2c10_70": 1, "DL1r_77": 2}
    assert table["DeepJet_medium"].rule("nanoaod").branch == "btagDeepFlavB"
    with pytest.raises(ValueError, match="cannot be redefined"):
        load_working_points({"DL1r_77": {"b_efficiency": 0.8}})
    extended = load_working_points({"mine": {"b_efficiency": 0.6, "c_rejection": 20, "light_rejection": 900,
                                             "tag": {"nanoaod": {"bit": 3}}}})
    assert extended["mine"].rule("nanoaod").bit == 3 and extended["mine"].efficiency(0) == pytest.approx(1 / 900)
    with pytest.raises(ValueError, match="delphes layout"):
        extended["mine"].rule("delphes")


def test_emulation_writes_one_bit_per_working_point():
    jets = generate_arrays("ttbar", 6000, seed=3, working_point="DL1r_77")["Jet"]
    bits = ak.to_numpy(ak.flatten(jets.btag))
    flavour = ak.to_numpy(ak.flatten(jets.hadronFlavour))
    central = np.abs(ak.to_numpy(ak.flatten(jets.eta))) < 2.5
    assert np.array_equal(bits & 1, (bits >> 2) & 1)  # bit 0 is the sample's own working point (DL1r_77)
    assert np.all(((bits >> 1) & 1) <= ((bits >> 2) & 1))  # the tighter MV2c10_70 tags a subset
    table = load_working_points()
    for name, bit in emulation_bits().items():
        for f in (5, 4, 0):
            sel = central & (flavour == f)
            n, k = sel.sum(), ((bits[sel] >> bit) & 1).sum()
            p = float(table[name].efficiency(f))
            assert abs(k - n * p) < 4 * np.sqrt(n * p * (1 - p)) + 1, (name, f, k, n, p)


# --- efficiency maps --------------------------------------------------------------------------------
def test_measured_maps_reproduce_the_working_points(workdir):
    directory, result = workdir
    path = result["path"]
    assert subprocess.run(["correction", "validate", str(path)], capture_output=True).returncode == 0
    cset = correctionlib.CorrectionSet.from_file(str(path))
    assert [v.name for v in cset["btag_efficiency"].inputs] == ["working_point", "flavor", "abseta", "pt"]
    table = load_working_points()
    for wp in ("MV2c10_70", "DL1r_77"):
        for flavour in (5, 4, 0):
            nominal = float(table[wp].efficiency(flavour))
            # the emulation's efficiency is flat: every bin agrees with the table within its error
            abseta, pt = np.repeat([0.3, 0.9, 1.5, 2.2], 6), np.tile([45.0, 70.0, 95.0, 130.0, 250.0, 700.0], 4)
            flav = np.full(len(pt), flavour)
            eff = cset["btag_efficiency"].evaluate(wp, flav, abseta, pt)
            stat = cset["btag_efficiency_stat"].evaluate(wp, flav, abseta, pt)
            jets = cset["btag_efficiency_jets"].evaluate(wp, flav, abseta, pt)
            assert np.all(jets >= 100) and np.all((eff > 0) & (eff < 1))
            # the binomial error of the nominal efficiency (the null hypothesis): the map's own
            # error is ~0.5 / jets where a bin has no tag (light jets: ~3-25 tags expected per bin)
            assert np.all(stat > 0)
            pull = (eff - nominal) / np.sqrt(nominal * (1.0 - nominal) / jets)
            assert np.all(np.abs(pull) < 4.5), (wp, flavour, pull)
            row = next(r for r in result["rows"] if r["working_point"] == wp and r["flavor"] == flavour)
            assert abs(row["efficiency"] - nominal) < 4 * np.sqrt(nominal * (1 - nominal) / row["jets"])
    # out of range is an error naming the input, unless the file clamps
    with pytest.raises(Exception, match="bounds"):
        cset["btag_efficiency"].evaluate("MV2c10_70", 5, 0.3, 30.0)
    job = load_job(directory / "measure.yaml")
    datasets = resolve_datasets(job, ensure_samples(job))
    clamped = measure_efficiency(job, {"X500": datasets["X500"]}, output=directory / "clamp.json", status=False, flow="clamp")
    value = correctionlib.CorrectionSet.from_file(str(clamped["path"]))["btag_efficiency"].evaluate("MV2c10_70", 5, 3.0, 30.0)
    assert 0.6 < value < 0.8


def test_short_bins_are_merged_not_zero_or_one():
    n = np.array([[500.0, 3.0, 0.0, 400.0], [2.0, 1.0, 0.0, 0.0]])  # second |eta| row: too few jets
    tagged = np.array([[350.0, 3.0, 0.0, 280.0], [2.0, 1.0, 0.0, 0.0]])
    m = efficiency_maps(n, n, tagged, nominal=0.7, min_jets=100)  # unit weights: sum2 = sum
    assert m.efficiency[0, 0] == pytest.approx((350 + 0.5) / (500 + 1)) and m.jets[0, 0] == 500
    # bins 1 and 2 are short: merged with bin 3 (one value, one count)
    assert m.efficiency[0, 1] == m.efficiency[0, 2] == m.efficiency[0, 3] == pytest.approx((283 + 0.5) / (403 + 1))
    assert m.jets[0, 2] == 403 and m.jets[1, 0] == n.sum()  # a short row takes the flavour's average
    assert np.all((m.efficiency > 0) & (m.efficiency < 1))
    none = efficiency_maps(np.full((1, 2), 5.0), np.full((1, 2), 5.0), np.full((1, 2), 5.0), nominal=0.7, min_jets=100)
    assert np.all(none.efficiency == 0.7) and np.all(none.jets == 0)  # flagged: nominal, 0 jets


# --- weights ----------------------------------------------------------------------------------------
def test_default_scale_factors_file():
    cset = correctionlib.CorrectionSet.from_file(str(default_scale_factor_path()))
    sf = cset["btag_scale_factors"]
    assert [v.name for v in sf.inputs] == ["systematic", "working_point", "flavor", "abseta", "pt"]
    for wp in load_working_points().values():
        for f, size in DEFAULT_SF_UNCERTAINTY.items():
            assert sf.evaluate("central", wp.correction_key, f, 1.0, 50.0) == 1.0
            assert sf.evaluate("up", wp.correction_key, f, 1.0, 50.0) == pytest.approx(1 + size)
            assert sf.evaluate("down", wp.correction_key, f, 2.4, 3000.0) == pytest.approx(1 - size)


def test_weights_are_one_with_unit_scale_factors_and_variations_move_yields(workdir):
    directory, _ = workdir
    hist_cfg = {"m_hh": {"bins": {"n": 10, "lo": 200, "hi": 1200}, "systematics": ["btag_bc", "btag_light"]}}
    cut = _run(directory, "cut", btagging={"working_point": "MV2c10_70"})
    weighted = _run(directory, "weight", btagging={"working_point": "MV2c10_70", "efficiency": "eff.json",
                                                   "method": "weight"}, histograms=hist_cfg)
    for name, h in cut["histograms"].items():
        if "systematic" not in h.axes.name:
            continue
        w = weighted["histograms"][name][{"systematic": "nominal"}]
        assert np.array_equal(h[{"systematic": "nominal"}].values(flow=True), w.values(flow=True)), name
    cut_flows, weighted_flows = list(_leaves(cut["cutflow"])), list(_leaves(weighted["cutflow"]))
    assert len(cut_flows) == len(weighted_flows) and all(np.array_equal(a, b) for a, b in zip(cut_flows, weighted_flows))
    # four b jets: b+c up raises the signal by about 1.03^4, light barely moves it
    nominal = _yield(weighted, "X500")[0]
    up, down = _yield(weighted, "X500", systematic="btag_bc_up")[0], _yield(weighted, "X500", systematic="btag_bc_down")[0]
    assert down < nominal < up and 1.08 < up / nominal < 1.13 and 0.87 < down / nominal < 0.92
    light_up = _yield(weighted, "X500", systematic="btag_light_up")[0]
    assert abs(light_up / nominal - 1) < 0.01
    # ttbar's four-tag events have mistagged c and light jets: the light variation raises them
    t_nominal, t_light_up = _yield(weighted, "ttbar")[0], _yield(weighted, "ttbar", systematic="btag_light_up")[0]
    t_bc_up = _yield(weighted, "ttbar", systematic="btag_bc_up")[0]
    assert t_bc_up > t_nominal and t_light_up != t_nominal


def _leaves(tree):
    if isinstance(tree, dict):
        for v in tree.values():
            yield from _leaves(v)
    else:
        yield np.asarray(tree)


# --- NanoAOD discriminant ------------------------------------------------------------------------------
def _nanoaod_with_discriminant(path, n=8000, seed=4):
    ev = generate_arrays("resonant", n, seed=seed, m_x=500.0)
    jets = ev["Jet"]
    flavour = ak.to_numpy(ak.flatten(jets.hadronFlavour))
    rng = np.random.default_rng(seed)
    disc = np.where(flavour == 5, rng.beta(5, 1, len(flavour)), np.where(flavour == 4, rng.beta(2, 2, len(flavour)),
                                                                         rng.beta(1, 8, len(flavour))))
    counts = ak.to_numpy(ak.num(jets))
    fields = {f: jets[f] for f in jets.fields if f != "btag"}  # a CMS file: no Jet_btag
    fields["btagDeepFlavB"] = ak.unflatten(disc.astype(np.float32), counts)
    fields["isB"] = ak.unflatten(flavour == 5, counts)  # not a discriminant
    out = {"Jet": ak.zip(fields), "GenPart": ev["GenPart"], "Electron": ev["Electron"], "Muon": ev["Muon"],
           "MET_pt": ev["MET_pt"], "MET_phi": ev["MET_phi"], "genWeight": ev["genWeight"]}
    with uproot.recreate(path) as f:
        f.mktree("Events", out)
    pt, eta = ak.to_numpy(ak.flatten(jets.pt)), ak.to_numpy(ak.flatten(jets.eta))
    return pt, eta, disc.astype(np.float32), counts


def test_nanoaod_discriminant_branch(tmp_path):
    path = tmp_path / "nano.root"
    pt, eta, disc, counts = _nanoaod_with_discriminant(path)
    threshold = 0.2783
    tagged = (pt > 40) & (np.abs(eta) < 2.5) & (disc > np.float32(threshold))
    expected = int((np.add.reduceat(tagged.astype(int), np.cumsum(counts) - counts)[counts > 0] >= 4).sum())
    assert expected > 200
    dataset = {"nano": {"files": [str(path)], "metadata": {"process": "resonant", "xsec_fb": 1.0, "n_generated": 8000},
                        "btagging": {"working_point": "DeepJet_medium",
                                     "tag": {"branch": "btagDeepFlavB", "threshold": threshold}}}}
    out = _run(tmp_path, "nano", samples=None, datasets=dataset)
    assert out["cutflow"]["nano"]["min_dr"]["resonant"]["four_tag"][0] == expected
    # the table's rule for DeepJet_medium reads the same branch at the same threshold
    dataset["nano"]["btagging"] = {"working_point": "DeepJet_medium"}
    assert _run(tmp_path, "nano_table", samples=None, datasets=dataset)["cutflow"]["nano"]["min_dr"]["resonant"]["four_tag"][0] == expected
    # without a tag rule the file lacks Jet_btag, as before
    for tag, words in (({"branch": "btagDeepCSV", "threshold": 0.5}, ("Jet_btagDeepCSV", "datasets.nano.btagging.tag.branch")),
                       ({"branch": "isB", "threshold": 0.5}, ("Jet_isB", "not a numeric discriminant", "datasets.nano.btagging.tag")),
                       ({"bit": 1}, ("Jet_btag", "datasets.nano.btagging.tag"))):
        dataset["nano"]["btagging"] = {"working_point": "DeepJet_medium", "tag": tag}
        with pytest.raises(ValueError) as err:
            _run(tmp_path, "nano_bad", samples=None, datasets=dataset)
        message = str(err.value)
        assert str(path) in message and all(w in message for w in words) and "\n" not in message, message


def test_missing_bit_of_a_generated_sample(workdir):
    directory, _ = workdir
    with pytest.raises(ValueError) as err:
        _run(directory, "bit5", btagging={"working_point": "MV2c10_70", "tag": {"bit": 5}})
    message = str(err.value)
    assert "no bit 5" in message and "Jet_btag" in message and "btagging.tag" in message and "X500.root" in message


# --- truth tagging --------------------------------------------------------------------------------
def test_poisson_binomial_and_draws_against_enumeration():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.0, 1.0, (50, 6))
    p[:, 5] = 0.0  # padding
    brute = np.zeros(50)
    for config in itertools.product((0, 1), repeat=6):
        c = np.array(config, dtype=bool)
        prob = np.prod(np.where(c, p, 1 - p), axis=1)
        if c.sum() >= 4:
            brute += prob
    np.testing.assert_allclose(probability_at_least(p, 4), brute, rtol=1e-12)
    # one event drawn 40000 times: configuration frequencies follow their conditional probability
    row = np.tile(p[:1], (40_000, 1))
    drawn = draw_tagged(row, rng.uniform(size=row.shape), 4)
    assert np.all(drawn.sum(axis=1) >= 4) and not drawn[:, 5].any()
    codes, freq = np.unique(drawn @ (1 << np.arange(6)), return_counts=True)
    for code, f in zip(codes, freq):
        c = ((code >> np.arange(6)) & 1).astype(bool)
        expected = np.prod(np.where(c, p[0], 1 - p[0])) / brute[0] * len(row)
        assert abs(f - expected) < 5 * np.sqrt(expected) + 2
    # uniforms depend on (file, entry, jet), not on how entries are grouped
    u = event_uniforms(7, np.arange(100, 200), 5)
    assert np.array_equal(u[30:], event_uniforms(7, np.arange(130, 200), 5)) and 0 <= u.min() and u.max() < 1
    assert not np.array_equal(u, event_uniforms(8, np.arange(100, 200), 5))


def test_truth_tag_agrees_with_cut_and_has_smaller_errors(workdir):
    directory, _ = workdir
    cut = _run(directory, "tt_cut", btagging={"working_point": "MV2c10_70"})
    truth = _run(directory, "tt_truth", btagging={"working_point": "MV2c10_70", "efficiency": "eff.json",
                                                  "method": "truth_tag"})
    for region in ("four_tag", "signal"):
        y_cut, e_cut = _yield(cut, "X500", region)
        y_tt, e_tt = _yield(truth, "X500", region)
        assert abs(y_tt - y_cut) < 3 * np.hypot(e_cut, e_tt), (region, y_cut, e_cut, y_tt, e_tt)
        assert e_tt < e_cut, region
    # more events carry the truth-tag weight than pass the cut
    assert truth["cutflow"]["X500"]["min_dr"]["resonant"]["four_tag"][0] > 3 * cut["cutflow"]["X500"]["min_dr"]["resonant"]["four_tag"][0]


@pytest.mark.parametrize("method", ["weight", "truth_tag"])
def test_results_do_not_depend_on_chunk_size(workdir, method):
    directory, _ = workdir
    spec = {"btagging": {"working_point": "MV2c10_70", "efficiency": "eff.json", "method": method},
            "histograms": {"m_hh": {"bins": {"n": 10, "lo": 200, "hi": 1200}, "systematics": ["btag_bc", "btag_light"]}}}
    big = _run(directory, f"chunks_big_{method}", executor={"name": "iterative", "chunksize": 100_000}, **spec)
    small = _run(directory, f"chunks_small_{method}", executor={"name": "iterative", "chunksize": 2_999}, **spec)
    for name, h in big["histograms"].items():
        np.testing.assert_allclose(h.values(flow=True), small["histograms"][name].values(flow=True), rtol=1e-10, atol=1e-12,
                                   err_msg=name)


# --- jobs -------------------------------------------------------------------------------------------
def test_job_without_btagging_reads_bit_zero_and_cuts(workdir):
    directory, _ = workdir
    plain = _run(directory, "plain")
    explicit = _run(directory, "explicit_bit0", btagging={"working_point": "MV2c10_70", "tag": {"bit": 0}})
    by_table = _run(directory, "by_table", btagging={"working_point": "MV2c10_70"})  # bit 1 = bit 0 for these samples
    for other in (explicit, by_table):
        for name, h in plain["histograms"].items():
            assert np.array_equal(h.values(flow=True), other["histograms"][name].values(flow=True)), name
    assert json.loads(json.dumps(plain["events_in"])) == json.loads(json.dumps(explicit["events_in"]))


@pytest.mark.parametrize("config, words", [
    ({"btagging": {"working_point": "MV2c10_99"}}, ("btagging.working_point", "MV2c10_99", "DL1r_77")),
    ({"btagging": {"working_point": "MV2c10_70", "method": "weight"}}, ("btagging.efficiency", "btag measure")),
    ({"histograms": {"m_hh": {"systematics": ["btag_bc"]}}}, ("btag_bc", "weight or truth_tag")),
    ({"btagging": {"working_point": "MV2c10_70", "tag": {"bit": 1, "threshold": 0.5}}}, ("btagging.tag", "threshold")),
    ({"datasets": {"x": {"sample": "nope"}}}, ("datasets.x.sample", "nope")),
])
def test_bad_btagging_config_is_one_line_per_problem(tmp_path, config, words):
    with pytest.raises(JobError) as err:
        load_job(_write_job(tmp_path, "bad", **config))
    message = str(err.value)
    assert all(w in message for w in words), message
