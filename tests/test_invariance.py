"""Results do not depend on chunk size, executor or worker count (bit for bit).

Weights here are dyadic (genWeight 1 x a power of two), so every sum is exact and any order of
accumulation gives the same bits; a difference is then a real dependence on the chunking, not
rounding. Chunks of 7 events leave most chunks without a four-tag event.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from hhcoffea.workflow.job import load_job
from hhcoffea.workflow.runner import ensure_samples, run_job

LUMINOSITY = 128.0
N_EVENTS = {"X500": 400, "ttbar": 300}
# xsec_fb x luminosity / n_generated = 2^-3: an exact weight
XSEC = {name: n * 2.0**-3 / LUMINOSITY for name, n in N_EVENTS.items()}


def _job(directory, data, chunksize, executor="iterative", workers=1) -> dict:
    return {
        "name": "invariance",
        "output": str(directory / f"out_{executor}_{workers}_{chunksize}"),
        "luminosity": LUMINOSITY,
        "datasets": {
            name: {"files": [str(data / f"{name}.root")],
                   "metadata": {"process": "resonant" if name == "X500" else "ttbar", "xsec_fb": XSEC[name],
                                "n_generated": n}}
            for name, n in N_EVENTS.items()
        },
        "pairers": {"min_dr": {}, "chi2": {}},
        "histograms": {"m_hh": {"bins": {"n": 20, "lo": 200.0, "hi": 1200.0}, "systematics": ["jes"]}},
        "systematics": {"jes": {"type": "jet_energy_scale", "size": 0.05}},
        "executor": {"name": executor, "workers": workers, "chunksize": chunksize},
    }


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    directory = tmp_path_factory.mktemp("invariance")
    spec = {"samples": {"directory": str(directory / "data"), "seed": 11, "generate": {
        "X500": {"process": "resonant", "m_x": 500.0, "n_events": N_EVENTS["X500"]},
        "ttbar": {"process": "ttbar", "n_events": N_EVENTS["ttbar"]},
    }}, "pairers": {"min_dr": {}}}
    (directory / "gen.yaml").write_text(yaml.safe_dump(spec))
    ensure_samples(load_job(directory / "gen.yaml"))
    return directory


def _run(directory, **kwargs):
    path = directory / f"job_{kwargs.get('executor', 'iterative')}_{kwargs.get('workers', 1)}_{kwargs['chunksize']}.yaml"
    path.write_text(yaml.safe_dump(_job(directory, directory / "data", **kwargs)))
    return run_job(load_job(path), status=False).output


@pytest.fixture(scope="module")
def reference(data):
    return _run(data, chunksize=100_000)


def assert_identical(a: dict, b: dict) -> None:
    assert a["histograms"].keys() == b["histograms"].keys()
    for name, h in a["histograms"].items():
        other = b["histograms"][name]
        assert h.axes == other.axes, name  # categories in the same (job) order
        assert np.array_equal(h.values(flow=True), other.values(flow=True)), name
        if h.variances() is not None:
            assert np.array_equal(h.variances(flow=True), other.variances(flow=True)), name
    for key in ("cutflow", "events_in", "excluded"):
        assert _plain(a[key]) == _plain(b[key]), key


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def test_reference_has_signal_and_empty_chunks(reference):
    flow = reference["cutflow"]["X500"]["min_dr"]["resonant"]
    assert flow["all"][0] == N_EVENTS["X500"] and flow["four_tag"][0] > 15
    assert flow["all"][1] == N_EVENTS["X500"] * 2.0**-3  # the weights are exact
    # with 7 events a chunk, most chunks hold no four-tag event: the case that used to crash
    assert flow["four_tag"][0] < N_EVENTS["X500"] / 7


@pytest.mark.parametrize("chunksize", [7, 1000, 100_000])
@pytest.mark.parametrize("executor,workers", [("iterative", 1), ("futures", 1), ("futures", 2), ("dask", 2)])
def test_outputs_do_not_depend_on_chunks_executor_or_workers(data, reference, chunksize, executor, workers):
    if (executor, workers, chunksize) == ("iterative", 1, 100_000):
        pytest.skip("the reference itself")
    assert_identical(reference, _run(data, chunksize=chunksize, executor=executor, workers=workers))


def test_cutflow_equals_histogram_totals(reference):
    """Where a cutflow row and a histogram region select the same events, their yields agree."""
    h = reference["histograms"]["m_hh"]
    rows = {"four_tag": ("four_tag", "nonresonant"), "signal_region": ("signal", "nonresonant"),
            "top_veto": ("preselection", "nonresonant")}
    for dataset in N_EVENTS:
        for pairer in ("min_dr", "chi2"):
            for step, (region, analysis) in rows.items():
                n, w = reference["cutflow"][dataset][pairer][analysis][step]
                cell = h[{"dataset": dataset, "region": region, "pairer": pairer, "systematic": "nominal"}]
                assert cell.values(flow=True).sum() == w, (dataset, pairer, step)
                # every filled event has weight 2^-3
                assert n == w * 8
            n, w = reference["cutflow"][dataset][pairer]["resonant"]["signal_region"]
            cell = h[{"dataset": dataset, "region": "resonant_signal", "pairer": pairer, "systematic": "nominal"}]
            assert cell.values(flow=True).sum() == w
