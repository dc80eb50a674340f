"""Three generated basis samples morph into a fourth, directly generated, kappa_lambda sample:
the full chain (generator -> coffea Runner -> histograms -> morphing) agrees within statistics."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hhcoffea.emulation.xsec import nonresonant_xsec
from hhcoffea.job import load_job
from hhcoffea.runner import run_job
from hhcoffea.stats import morphing, workspace

BASIS = (1.0, 5.0, 10.0)
CHECK = 3.0


@pytest.fixture(scope="module")
def histograms(tmp_path_factory):
    directory = tmp_path_factory.mktemp("morph")
    samples = {f"hh_k{k:g}": {"process": "nonresonant", "kappa_lambda": k, "n_events": 60000} for k in (*BASIS, CHECK)}
    job = {
        "name": "morphing",
        "output": "out",
        "samples": {"directory": "data", "seed": 11, "generate": samples},
        "pairers": {"min_dr": {}},
        "histograms": {"m_hh": {"bins": [250, 300, 350, 400, 450, 500, 600, 700, 900, 1200]}},
        "executor": {"name": "iterative", "chunksize": 60000},
    }
    (directory / "job.yaml").write_text(yaml.safe_dump(job))
    return run_job(load_job(directory / "job.yaml"), status=False).output["histograms"]


def test_three_basis_samples_reproduce_a_fourth(histograms):
    get = lambda d: workspace.extract_template(histograms, d, region="four_tag", pairer="min_dr")  # noqa: E731
    basis = [get(f"hh_k{k:g}") for k in BASIS]
    direct = get(f"hh_k{CHECK:g}")
    morphed = morphing.morph_template(list(BASIS), basis, CHECK)
    ok = direct.yields > 0
    pulls = (morphed.yields[ok] - direct.yields[ok]) / np.sqrt(morphed.sumw2[ok] + direct.sumw2[ok])
    assert ok.sum() >= 8
    assert np.sum(pulls**2) / ok.sum() < 2.5, pulls  # consistent with the statistical errors
    assert morphed.yields.sum() == pytest.approx(direct.yields.sum(), rel=0.05)
    # the same comparison rejects a wrong basis assignment
    wrong = morphing.morph_template([1.0, 4.0, 10.0], basis, CHECK)
    bad = (wrong.yields[ok] - direct.yields[ok]) / np.sqrt(wrong.sumw2[ok] + direct.sumw2[ok])
    assert np.sum(bad**2) / ok.sum() > 5.0


def test_generated_cross_section_is_quadratic_with_minimum_near_two():
    k = np.linspace(-5, 12, 35)
    sigma = nonresonant_xsec(k)
    c2, c1, c0 = np.polyfit(k, sigma, 2)
    np.testing.assert_allclose(np.polyval([c2, c1, c0], k), sigma, rtol=1e-9)
    assert nonresonant_xsec(1.0) == pytest.approx(31.05, rel=1e-6)
    assert 1.8 < -c1 / (2 * c2) < 2.8
