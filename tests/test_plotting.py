"""Run plots on real hist histograms booked like the processor's: which files are written, and what
a reader sees on them (experiment label, y label, colour bar, per-GeV heights, colours)."""

from __future__ import annotations

import re

import matplotlib
import matplotlib.image
import matplotlib.patches
import matplotlib.text
import numpy as np
import pytest

from hhcoffea.histograms import book
from hhcoffea.workflow.plotting import (
    BACKGROUND_COLOURS,
    PLOTTED_REGIONS,
    SIGNAL_COLOURS,
    plot_m_hh,
    plot_mass_plane,
    plot_run,
)

# metadata as the runner gives it to plot_run
METADATA = {
    "X500": {"process": "resonant", "working_point": "MV2c10_70"},
    "X1000": {"process": "resonant", "working_point": "MV2c10_70"},
    "qcd": {"process": "qcd", "working_point": "MV2c10_70"},
}
BACKGROUND = ["qcd"]
VARIABLE_BINS = [250, 300, 400, 500, 700, 1000, 1500]


def filled(binning=None):
    """Histograms from hhcoffea.histograms.book() with a few entries per dataset."""
    hists = book(binning)
    rng = np.random.default_rng(3)
    for dataset, centre, n in (("X500", 500.0, 200), ("X1000", 1000.0, 150), ("qcd", 450.0, 600)):
        for region in PLOTTED_REGIONS:
            hists["m_hh"].fill(dataset=dataset, region=region, pairer="min_dr", systematic="nominal",
                               m_hh=rng.normal(centre, 60.0, n), weight=np.full(n, 0.5))
        hists["m_h1_m_h2"].fill(dataset=dataset, region="four_tag", pairer="min_dr", systematic="nominal",
                                m_h1=rng.normal(121.0, 15.0, n), m_h2=rng.normal(110.0, 15.0, n))
    return hists


def texts(fig) -> str:
    return " | ".join(t.get_text() for t in fig.findobj(matplotlib.text.Text))


def has_experiment_label(fig, luminosity: str) -> bool:
    """'Simulation' and 'L fb^-1 (13 TeV)' are drawn (mplhep writes fb^-1 in mathtext)."""
    shown = texts(fig)
    return "Simulation" in shown and re.search(rf"(^| ){luminosity} \S*fb\^{{-1}}\S* \(13 TeV\)", shown) is not None


def step_patches(ax) -> dict:
    """Each dataset's drawn histogram, by name."""
    return {p.get_gid(): p for p in ax.patches if isinstance(p, matplotlib.patches.StepPatch)}


def test_plot_run_writes_a_mass_plane_per_signal_and_the_background(tmp_path):
    (tmp_path / "mass_plane_old_min_dr.png").write_bytes(b"")  # a plot of an older job
    written = plot_run(filled(), tmp_path, METADATA, luminosity=139.0)
    names = sorted(p.name for p in written)
    expected = [f"m_hh_{r}_min_dr_MV2c10_70.png" for r in PLOTTED_REGIONS]
    expected += [f"mass_plane_{d}_min_dr.png" for d in ("X500", "X1000", "qcd")]
    assert names == sorted(expected)
    assert sorted(p.name for p in tmp_path.glob("*.png")) == sorted(expected)
    for path in written:  # real images, drawn
        image = matplotlib.image.imread(path)
        assert image.shape[0] > 200 and image.shape[1] > 200 and image[..., :3].std() > 0.05


def test_m_hh_label_y_label_and_colours():
    hists = filled()
    fig = plot_m_hh(hists["m_hh"], list(METADATA), BACKGROUND, luminosity=139.0, region="signal", pairer="min_dr")
    ax = fig.axes[0]
    assert has_experiment_label(fig, "139")
    assert ax.get_ylabel() == "Events / 20 GeV"  # the booked m_hh axis: 60 bins over 200-1400 GeV
    patches = step_patches(ax)
    # regular bins: heights are events per bin
    expected = hists["m_hh"][{"dataset": "X500", "region": "signal", "pairer": "min_dr", "systematic": "nominal"}]
    np.testing.assert_allclose(patches["X500"].get_data().values, expected.values())
    # signals are lines in their own colours; the background is a muted fill
    signal_colours = {matplotlib.colors.to_hex(patches[d].get_edgecolor()) for d in ("X500", "X1000")}
    assert signal_colours == {SIGNAL_COLOURS[0].lower(), SIGNAL_COLOURS[1].lower()}
    assert not patches["X500"].get_fill()
    assert patches["qcd"].get_fill()
    assert matplotlib.colors.to_hex(patches["qcd"].get_facecolor()) == BACKGROUND_COLOURS[0]
    assert not signal_colours & {matplotlib.colors.to_hex(x) for x in BACKGROUND_COLOURS}
    matplotlib.pyplot.close(fig)


def test_variable_bins_are_drawn_per_gev():
    hists = filled({"m_hh": VARIABLE_BINS})
    fig = plot_m_hh(hists["m_hh"], list(METADATA), BACKGROUND, region="four_tag", pairer="min_dr")
    ax = fig.axes[0]
    assert ax.get_ylabel() == "Events / GeV"
    assert has_experiment_label(fig, "300")  # the default luminosity: the processor's default
    view = hists["m_hh"][{"dataset": "X1000", "region": "four_tag", "pairer": "min_dr", "systematic": "nominal"}]
    assert view.values().sum() > 0
    np.testing.assert_allclose(step_patches(ax)["X1000"].get_data().values, view.values() / np.diff(VARIABLE_BINS))
    matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("dataset", ["X1000", "qcd"])
def test_mass_plane_colour_bar_and_label(dataset):
    hists = filled()
    fig = plot_mass_plane(hists["m_h1_m_h2"], dataset, luminosity=3000.0, pairer="min_dr")
    plane_ax, colour_bar_ax = fig.axes
    assert colour_bar_ax.get_ylabel().startswith("Events / bin")
    assert has_experiment_label(fig, "3000")
    assert "$m_{h_1}$" in plane_ax.get_xlabel() and "$m_{h_2}$" in plane_ax.get_ylabel()
    # the colour scale spans this dataset's own bins
    view = hists["m_h1_m_h2"][{"dataset": dataset, "region": "four_tag", "pairer": "min_dr", "systematic": "nominal"}]
    assert colour_bar_ax.get_ylim()[1] == pytest.approx(view.values().max())
    matplotlib.pyplot.close(fig)
