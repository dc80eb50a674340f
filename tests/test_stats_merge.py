"""statistics.merge_empty_bins: bins without expected background merged into their neighbours."""

from __future__ import annotations

import json

import hist
import numpy as np
import pytest
from test_stats_hh import base_config

from hhcoffea.stats import analysis, config, workspace
from hhcoffea.stats.likelihood import UnsupportedModelError

L0 = 139.0
EDGES = [250.0, 300.0, 350.0, 400.0, 500.0, 700.0, 1000.0]
MERGED_EDGES = [250.0, 400.0, 500.0, 700.0, 1000.0]  # the first three bins by hand
# per-bin yields at L0; qcd and ttbar are empty below 350 GeV like the demo's DNN selection
YIELDS = {
    "qcd": [0.0, 0.0, 40.0, 80.0, 60.0, 20.0],
    "ttbar": [0.0, 0.0, 5.0, 10.0, 8.0, 3.0],
    "X_500": [0.5, 1.0, 3.0, 9.0, 1.0, 0.2],
    "hh_kl1": [3.0, 6.0, 9.0, 8.0, 4.0, 1.0],
    "hh_kl5": [15.0, 18.0, 12.0, 6.0, 3.0, 1.0],
    "hh_kl10": [60.0, 50.0, 24.0, 10.0, 4.0, 1.2],
    "hh_kl3": [7.0, 10.0, 9.0, 6.0, 3.0, 1.0],
    "data_obs": [1.0, 0.0, 44.0, 95.0, 70.0, 21.0],
}
JES_SHAPE = np.array([0.5, -0.2, 1.0, 0.3, -0.6, 0.8])  # relative shift per bin of jes_up (jes_down: minus)
META = {
    "luminosity": L0,
    "datasets": {
        "qcd": {"process": "qcd", "xsec_fb": 1000.0},
        "ttbar": {"process": "ttbar", "xsec_fb": 100.0},
        "X_500": {"process": "resonant", "m_x": 500.0, "xsec_fb": 1.0},
        "data_obs": {"process": "data", "xsec_fb": 1.0},
        **{f"hh_kl{k}": {"process": "nonresonant", "kappa_lambda": float(k), "xsec_fb": 0.05 * k} for k in (1, 3, 5, 10)},
    },
}


def make_histograms(edges, yields=YIELDS):
    """The processor's layout; every bin's yield filled as two weighted entries (sumw2 != yield)
    at the bin centres of EDGES, so the hand-merged binning holds exactly the same entries."""
    h = hist.Hist(
        hist.axis.StrCategory(list(yields), name="dataset"),
        hist.axis.StrCategory(["signal"], name="region"),
        hist.axis.StrCategory(["min_dr"], name="pairer"),
        hist.axis.StrCategory(["nominal", "jes_up", "jes_down"], name="systematic"),
        hist.axis.Variable(edges, name="m_hh"),
        storage=hist.storage.Weight(),
    )
    centres = 0.5 * (np.array(EDGES[1:]) + np.array(EDGES[:-1]))
    for name, y in yields.items():
        y = np.asarray(y)
        for syst, factor in (("nominal", 1.0), ("jes_up", 1.0 + 0.03 * JES_SHAPE), ("jes_down", 1.0 - 0.03 * JES_SHAPE)):
            if name == "data_obs" and syst != "nominal":
                continue
            for part in (0.7, 0.3):
                h.fill(dataset=name, region="signal", pairer="min_dr", systematic=syst, m_hh=centres, weight=y * factor * part)
    return {"m_hh": h}


def stats_config(**over):
    """test_stats_hh's configuration with one resonant point, a coarse kappa grid and no ttbar normsys."""
    cfg = base_config(
        resonant=["X_500"],
        nonresonant={"basis": ["hh_kl1", "hh_kl5", "hh_kl10"], "kappa_lambda": {"start": -10, "stop": 20, "num": 7},
                     "hypothesis": {"kappa_lambda": 1.0, "mu": 1.0}},
    )
    cfg["systematics"]["normsys"] = cfg["systematics"]["normsys"][:1]  # qcd_norm only
    cfg.update(over)
    return cfg


def _inputs(histograms, **over):
    cfg = config.StatisticsConfig(stats_config(**over), META)
    return analysis.AnalysisInputs(cfg, histograms, META)


def _all_templates(inp):
    """{(dataset, region): Template} of every sample the inputs hold."""
    out = {(b, r): s.template for b, d in inp.backgrounds.items() for r, s in d.items()}
    out.update({(n, r): s.template for n, d in inp.resonant.items() for r, s in d.items()})
    out.update({(inp.cfg.basis[i], r): s.template for i, d in enumerate(inp.basis) for r, s in d.items()})
    if inp.check:
        out.update({(inp.cfg.check, r): s.template for r, s in inp.check.items()})
    return out


def test_merge_goes_towards_more_background_until_all_positive():
    assert workspace.empty_bin_merge([5.0, 0.0, 20.0], "c").groups == ((0, 1), (1, 3))
    assert workspace.empty_bin_merge([20.0, 0.0, 5.0], "c").groups == ((0, 2), (2, 3))
    # two empty bins at the edge: merged into the first populated bin; negative counts as empty
    m = workspace.empty_bin_merge([0.0, -1.0, 3.0, 5.0], "c")
    assert m.groups == ((0, 3), (3, 4)) and m.empty == (0, 1)
    assert m.describe("dnn_min_dr", [250, 300, 350, 400, 450]) == "channel dnn_min_dr: bins [250, 300], [300, 350] merged into [250, 400]"
    np.testing.assert_array_equal(m.edges([250, 300, 350, 400, 450]), [250, 400, 450])
    with pytest.raises(ValueError, match="channel 'c': no bin has a positive expected background"):
        workspace.empty_bin_merge([0.0, 0.0], "c")
    with pytest.raises(ValueError, match="merge_empty_bins must be true or false, got 'yes'"):
        config.StatisticsConfig(stats_config(merge_empty_bins="yes"), META)


def test_empty_background_bin_errors_without_option_and_fits_with_it(tmp_path):
    histos = make_histograms(EDGES)
    with pytest.raises(UnsupportedModelError, match=r"channel 'signal' bin 0 has 0 expected background events"):
        analysis.run_statistics(stats_config(), histos, META, tmp_path / "off")
    summary = analysis.run_statistics(stats_config(merge_empty_bins=True), histos, META, tmp_path / "on")
    text = "channel signal: bins [250, 300], [300, 350] merged into [250, 400]"
    expected = {"signal": {"merged": [{"bins": [[250.0, 300.0], [300.0, 350.0]], "into": [250.0, 400.0]}],
                           "edges": MERGED_EDGES, "text": text}}
    assert summary["merged_bins"] == {"resonant": expected, "nonresonant": expected}
    assert f"merged empty-background bins (nonresonant): {text}" in analysis.format_summary(summary)
    lumi = tmp_path / "on" / "statistics" / "lumi_300"
    assert json.loads((lumi / "kappa_lambda.json").read_text())["merged_bins"] == expected
    assert json.loads((lumi / "limits_resonant.json").read_text())["merged_bins"] == expected
    (obs,) = json.loads((lumi / "nonresonant_bkgonly.json").read_text())["observations"]
    assert len(obs["data"]) == 4
    entry = summary["luminosities"]["300"]
    assert entry["resonant"]["converged"] and entry["kappa_lambda"]["cls"]["converged"]
    # the merge in code gives the results of a histogram binned that way from the start
    ref = analysis.run_statistics(stats_config(), make_histograms(MERGED_EDGES), META, tmp_path / "ref")
    ref_entry = ref["luminosities"]["300"]
    for m, lim in entry["resonant"]["xsec_limits_fb"].items():
        assert lim["expected"] == pytest.approx(ref_entry["resonant"]["xsec_limits_fb"][m]["expected"], rel=1e-6)
    got, want = entry["kappa_lambda"]["cls"]["expected"]["segments"], ref_entry["kappa_lambda"]["cls"]["expected"]["segments"]
    assert len(got) == 2  # the toy excludes a kappa_lambda range: the comparison is not of open intervals
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_merged_templates_conserve_totals_and_merge_data_and_histosys_alike():
    histos = make_histograms(EDGES)
    over = {"data": {"dataset": "data_obs"}, "nonresonant": {**stats_config()["nonresonant"], "check": "hh_kl3"}}
    raw, merged = _inputs(histos, **over), _inputs(histos, merge_empty_bins=True, **over)
    assert merged.channel_edges["signal"].tolist() == MERGED_EDGES
    before, after = _all_templates(raw), _all_templates(merged)
    assert set(before) == set(after) and len(after) == 7
    for key, t in before.items():
        m = after[key]
        assert m.yields.shape == (4,)
        for a, b in ((t.yields, m.yields), (t.sumw2, m.sumw2)):
            assert b.sum() == pytest.approx(a.sum(), rel=1e-12)
            assert b[0] == pytest.approx(a[:3].sum(), rel=1e-12)  # bins 250-400 summed
            np.testing.assert_array_equal(b[1:], a[3:])  # the others untouched
        assert set(m.variations) == set(t.variations)
        for name, (up, down) in t.variations.items():
            mup, mdown = m.variations[name]
            np.testing.assert_allclose(mup, np.r_[up[:3].sum(), up[3:]], rtol=1e-12)
            np.testing.assert_allclose(mdown, np.r_[down[:3].sum(), down[3:]], rtol=1e-12)
    # jes is a histosys of qcd and the signals: their variations are there and differ from nominal
    assert "jes" in after[("qcd", "signal")].variations and "jes" in after[("hh_kl5", "signal")].variations
    assert after[("qcd", "signal")].variations["jes"][0][0] != pytest.approx(after[("qcd", "signal")].yields[0])
    np.testing.assert_allclose(merged.data["signal"], [45.0, 95.0, 70.0, 21.0], rtol=1e-12)
    np.testing.assert_allclose(raw.data["signal"], YIELDS["data_obs"], rtol=1e-12)


def test_merge_of_positive_channel_is_identity(tmp_path):
    yields = {**YIELDS, "qcd": [12.0, 25.0, 40.0, 80.0, 60.0, 20.0]}
    histos = make_histograms(EDGES, yields)
    assert workspace.empty_bin_merge(yields["qcd"], "signal").is_identity
    raw, merged = _inputs(histos), _inputs(histos, merge_empty_bins=True)
    assert merged.merges == {} and merged.merged_bins == {}
    for key, t in _all_templates(raw).items():
        m = _all_templates(merged)[key]
        np.testing.assert_array_equal(m.yields, t.yields)
        np.testing.assert_array_equal(m.sumw2, t.sumw2)
        for name, (up, down) in t.variations.items():
            np.testing.assert_array_equal(m.variations[name][0], up)
            np.testing.assert_array_equal(m.variations[name][1], down)
    t = raw.backgrounds["qcd"]["signal"].template
    same = workspace.BinMerge.identity(6).template(t)
    np.testing.assert_array_equal(same.yields, t.yields)
    summary = analysis.run_statistics(stats_config(merge_empty_bins=True, resonant=[]), histos, META, tmp_path)
    assert summary["merged_bins"] == {} and "merged empty-background" not in analysis.format_summary(summary)
