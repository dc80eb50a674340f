"""Three generated basis samples morph into a fourth, directly generated, kappa_lambda sample:
the full chain (generator -> coffea Runner -> histograms -> morphing) agrees within statistics.

The samples are normalised to sigma_NNLO(kappa_lambda) x BR (PHYSICS.md "Calibration numbers");
the emulation gives shapes and acceptance only. Their templates therefore morph with
``xsec.nonresonant_morphing_coefficients``; the plain Lagrange coefficients would fit the NNLO
totals, but not the shapes (checked below).
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hhcoffea import constants as C
from hhcoffea.emulation import xsec
from hhcoffea.stats import morphing, workspace
from hhcoffea.workflow.job import load_job
from hhcoffea.workflow.runner import run_job

BASIS = (1.0, 5.0, 10.0)
CHECK = 3.0
N_EVENTS = 60000


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("morph")
    samples = {f"hh_k{k:g}": {"process": "nonresonant", "kappa_lambda": k, "n_events": N_EVENTS} for k in (*BASIS, CHECK)}
    job = {
        "name": "morphing",
        "output": "out",
        "luminosity": 1.0,
        "samples": {"directory": "data", "seed": 11, "generate": samples},
        "pairers": {"min_dr": {}},
        "histograms": {"m_hh": {"bins": {"edges": [250, 300, 350, 400, 450, 500, 600, 700, 900, 1200]}}},
        "executor": {"name": "iterative", "chunksize": 60000},
    }
    (directory / "job.yaml").write_text(yaml.safe_dump(job))
    return run_job(load_job(directory / "job.yaml"), status=False)


def _template(run, name, region="four_tag"):
    return workspace.extract_template(run.output["histograms"], name, region=region, pairer="min_dr")


def _combine(coefficients, templates):
    return workspace.Template(
        sum(c * t.yields for c, t in zip(coefficients, templates)),
        sum(c**2 * t.sumw2 for c, t in zip(coefficients, templates)),
    )


def _chi2_per_bin(a, b):
    ok = b.yields > 0
    assert ok.sum() >= 8
    pulls = (a.yields[ok] - b.yields[ok]) / np.sqrt(a.sumw2[ok] + b.sumw2[ok])
    return float(np.sum(pulls**2) / ok.sum())


def test_samples_carry_the_nnlo_cross_section(run):
    for k in (*BASIS, CHECK):
        meta = run.fileset.coffea[f"hh_k{k:g}"]["metadata"]
        assert meta["xsec_fb"] == pytest.approx(C.ggf_hh_xsec_13tev(k) * C.BR_HH_4B, rel=1e-12)


def test_three_basis_samples_reproduce_a_fourth(run):
    basis = [_template(run, f"hh_k{k:g}") for k in BASIS]
    direct = _template(run, f"hh_k{CHECK:g}")
    morphed = _combine(xsec.nonresonant_morphing_coefficients(BASIS, CHECK), basis)
    assert _chi2_per_bin(morphed, direct) < 2.5  # consistent with the statistical errors
    # totals agree within 3 sigma of their statistical errors (the morphing amplifies the basis
    # samples' errors: ~3.5% here)
    sigma = np.sqrt(morphed.sumw2.sum() + direct.sumw2.sum())
    assert abs(morphed.yields.sum() - direct.yields.sum()) < 3.0 * sigma, (morphed.yields.sum(), direct.yields.sum(), sigma)
    # the plain Lagrange coefficients morph NNLO-normalised shapes wrongly (K(3) / K(5) = 0.65)
    plain = morphing.morph_template(list(BASIS), basis, CHECK)
    assert _chi2_per_bin(plain, direct) > 10.0
    # and so does a wrong basis assignment
    wrong = _combine(xsec.nonresonant_morphing_coefficients([1.0, 4.0, 10.0], CHECK), basis)
    assert _chi2_per_bin(wrong, direct) > 5.0


def test_morphed_total_cross_section_is_the_nnlo_one(run):
    """Generated cross sections (before any cut) morph to sigma_NNLO(kappa) x BR at every kappa."""
    sigmas = [run.fileset.coffea[f"hh_k{k:g}"]["metadata"]["xsec_fb"] for k in BASIS]
    kappas = np.array([-6.0, -1.0, 0.0, 2.28, CHECK, 7.5, 14.0])
    expected = C.ggf_hh_xsec_13tev(kappas) * C.BR_HH_4B
    d = xsec.nonresonant_morphing_coefficients(BASIS, kappas)
    np.testing.assert_allclose(d @ sigmas, expected, rtol=1e-10)
    np.testing.assert_allclose(morphing.morph_values(list(BASIS), sigmas, kappas), expected, rtol=1e-10)


def test_emulated_shape_cross_section_is_quadratic_with_minimum_near_two():
    k = np.linspace(-5, 12, 35)
    sigma = xsec.nonresonant_xsec(k)
    c2, c1, c0 = np.polyfit(k, sigma, 2)
    np.testing.assert_allclose(np.polyval([c2, c1, c0], k), sigma, rtol=1e-9)
    assert xsec.nonresonant_xsec(1.0) == pytest.approx(31.05, rel=1e-6)
    assert 1.8 < -c1 / (2 * c2) < 2.8
