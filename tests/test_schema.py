"""Job files are validated before anything runs: one line per problem, naming the key path, the
value and what is expected (``hhcoffea.workflow.schema``), and ``hhcoffea check``."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from hhcoffea.workflow.job import DEFAULTS, JobError, load_job
from hhcoffea.workflow.schema import JobModel, schema_markdown

BASE = {
    "datasets": {"qcd": {"files": ["qcd.root"], "metadata": {"process": "qcd", "xsec_fb": 6030.0, "n_generated": 1000}}},
    "pairers": {"min_dr": {}, "chi2": {}},
    "systematics": {"jes": {"type": "jet_energy_scale", "size": 0.02}},
    "histograms": {"m_hh": {"bins": {"n": 20, "lo": 0.0, "hi": 1000.0}, "systematics": ["jes"]}},
}


def _errors(tmp_path, **changes) -> list[str]:
    config = copy.deepcopy(BASE)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(JobError) as info:
        load_job(path)
    lines = str(info.value).splitlines()
    assert all(line.startswith(f"{path}: ") for line in lines)
    return [line.removeprefix(f"{path}: ") for line in lines]


@pytest.mark.parametrize("changes, path, expected", [
    ({"executor": {"chunksize": "lots"}}, "executor.chunksize", "valid integer"),
    ({"executor": {"chunksize": 0}}, "executor.chunksize", "greater than or equal to 1"),
    ({"executor": {"chunksize": -5}}, "executor.chunksize", "greater than or equal to 1"),
    ({"executor": {"workers": 0}}, "executor.workers", "greater than or equal to 1"),
    ({"executor": {"name": "spark"}}, "executor.name", "'iterative', 'futures', 'dask' or 'dask-awkward'"),
    ({"systematics": {"jes": {"size": -5}}}, "systematics.jes.size", "greater than 0"),
    ({"datasets": {"x": {"files": []}}}, "datasets.x.files", "at least one file"),
    ({"datasets": {"x": {"files": ["a.root"], "metadata": {"xsec_fb": -1.0, "n_generated": 10}}}},
     "datasets.x.metadata.xsec_fb", "greater than 0"),
    ({"datasets": {"x": {"files": ["a.root"], "metadata": {"xsec_fb": 1.0, "n_generated": 0}}}},
     "datasets.x.metadata.n_generated", "greater than or equal to 1"),
    ({"datasets": {"x": {"files": ["a.root"], "metadata": {"xsec_fb": 1.0}}}},
     "datasets.x.metadata", "xsec_fb is given without n_generated"),
    ({"luminosity": "300"}, "luminosity", "valid number"),
    ({"on_bad_file": "ignore"}, "on_bad_file", "'skip' or 'fail'"),
    ({"samples": {"generate": {"X": {"process": "resonant", "n_events": 10}}}}, "samples.generate.X", "needs m_x"),
    ({"executor": {"name": "futures", "cluster": {"type": "slurm", "memory": "2GB"}}}, "executor",
     "cluster needs executor name dask"),
    ({"executor": {"name": "dask", "cluster": {"type": "lsf", "memory": "2GB"}}}, "executor.cluster.type",
     "'slurm', 'htcondor' or 'pbs'"),
    ({"executor": {"name": "dask", "cluster": {"type": "slurm", "memory": "2GB", "adapt": {"minimum": 5, "maximum": 2}}}},
     "executor.cluster.adapt", "minimum (5) must not exceed maximum (2)"),
])
def test_bad_values_name_the_key_the_value_and_what_is_expected(tmp_path, changes, path, expected):
    (line,) = _errors(tmp_path, **changes)
    assert line.startswith(f"{path}: "), line
    assert expected in line, line


@pytest.mark.parametrize("changes, path, suggestion", [
    ({"executor": {"chunk_size": 5}}, "executor.chunk_size", "chunksize"),
    ({"pairers": {"chi2": {"option": {"n_higgs": 2}}}}, "pairers.chi2.option", "options"),
    ({"datasets": {"x": {"files": ["a.root"], "metdata": {}}}}, "datasets.x.metdata", "metadata"),
    ({"histograms": {"mhh_typo": {}}}, "histograms.mhh_typo", None),
    ({"histograms": {"m_hh": {"bins": {"edges": [1.0, 2.0], "n": 3}}}}, "histograms.m_hh.bins.n", None),
    ({"lumi": 3}, "lumi", None),
])
def test_unknown_keys_are_rejected_at_every_level(tmp_path, changes, path, suggestion):
    (line,) = _errors(tmp_path, **changes)
    assert line.startswith(f"{path}: unknown"), line
    if suggestion:
        assert f"did you mean {suggestion!r}" in line, line


def test_bins_forms_cannot_be_confused(tmp_path):
    # the old list form is rejected: [250, 500, 1000] could be 250 bins or three edges
    (line,) = _errors(tmp_path, histograms={"m_hh": {"bins": [250, 500, 1000]}})
    assert line.startswith("histograms.m_hh.bins: got [250, 500, 1000]; a plain list is ambiguous")
    assert "{n: 20, lo: 0, hi: 1000}" in line and "{edges: [" in line
    (line,) = _errors(tmp_path, histograms={"m_hh": {"bins": {"edges": [250, 200]}}})
    assert line == "histograms.m_hh.bins.edges: got [250, 200]; edges must increase strictly, but edge 1 (200) <= edge 0 (250)"
    (line,) = _errors(tmp_path, histograms={"m_hh": {"bins": {"edges": [250]}}})
    assert line.startswith("histograms.m_hh.bins.edges: got [250]") and "at least 2" in line
    (line,) = _errors(tmp_path, histograms={"m_hh": {"bins": {"n": 20, "lo": 500.0, "hi": 20.0}}})
    assert line == "histograms.m_hh.bins: hi (20) must be greater than lo (500)"
    (line,) = _errors(tmp_path, histograms={"m_hh": {"bins": {"nbins": 20}}})
    assert line.startswith("histograms.m_hh.bins: got {'nbins': 20}; bins must be {n: 20, lo: 0, hi: 1000}")


def test_both_bins_forms_build_the_axis_they_say(tmp_path):
    from hhcoffea.histograms import book
    from hhcoffea.workflow.runner import make_processor

    config = copy.deepcopy(BASE)
    config["histograms"] = {"m_hh": {"bins": {"edges": [250, 500, 1000]}}, "pt_hh": {"bins": {"n": 3, "lo": 0, "hi": 30}}}
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(config))
    proc = make_processor(load_job(path))
    hists = book(proc.binning)
    assert list(hists["m_hh"].axes["m_hh"].edges) == [250.0, 500.0, 1000.0]  # three edges: two bins
    assert list(hists["pt_hh"].axes["pt_hh"].edges) == [0.0, 10.0, 20.0, 30.0]


def test_pairers_are_constructed_with_their_options_up_front(tmp_path):
    (line,) = _errors(tmp_path, pairers={"chi2": {"options": {"n_higs": 2}}})
    assert line.startswith("pairers.chi2.options: pairer 'chi2' with options {'n_higs': 2}: ")
    assert "unknown option(s) 'n_higs'" in line and "n_higgs" in line
    (line,) = _errors(tmp_path, pairers={"chi2_hhh": {"plugin": "chi2", "options": {"n_higgs": 3}}})
    assert line.startswith("pairers.chi2_hhh: pairer 'chi2' builds 3 Higgs candidates")
    (line,) = _errors(tmp_path, pairers={"nope": {}})
    assert line.startswith("pairers.nope: pairer 'nope'") and "no pairer named 'nope'" in line


def test_every_problem_is_reported_at_once(tmp_path):
    lines = _errors(tmp_path, executor={"chunksize": 0, "workers": 0}, datasets={"x": {"files": []}})
    assert sorted(line.split(":")[0] for line in lines) == ["datasets.x.files", "executor.chunksize", "executor.workers"]
    # checks across sections (and of the pairers) follow once every section is well-formed
    lines = _errors(tmp_path, histograms={"m_hh": {"systematics": ["jer"]}, "x_hh": {"systematics": ["jes", "up"]}})
    assert lines == ["histograms.m_hh.systematics: got 'jer'; expected one of the names under 'systematics' (jes)",
                     "histograms.x_hh.systematics: got 'up'; expected one of the names under 'systematics' (jes)"]


def test_valid_job_is_normalised(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(BASE))
    config = load_job(path).config
    assert config["histograms"]["m_hh"]["bins"] == (20, 0.0, 1000.0)
    assert config["executor"] == DEFAULTS["executor"]
    assert config["pairers"]["chi2"] == {"plugin": None, "options": {}}


def test_defaults_and_schema_list_the_same_sections():
    # a new section (btagging, scorers, ...) goes into both, and gets its own model
    assert set(DEFAULTS) == set(JobModel.model_fields)
    dumped = JobModel.model_validate({"datasets": BASE["datasets"]}).model_dump()
    for key, value in DEFAULTS.items():
        if key not in ("datasets", "selection", "pairers"):
            assert dumped[key] == value, key


def test_schema_table_covers_every_key():
    table = schema_markdown()
    for path in ("executor.chunksize", "executor.cluster.adapt.maximum", "histograms.<name>.bins",
                 "datasets.<name>.metadata.xsec_fb", "samples.generate.<name>.n_events", "pairers.<name>.options"):
        assert f"| `{path}` |" in table, path


def test_demo_job_is_valid():
    job = load_job("jobs/demo.yaml")
    # 50 GeV bins from 250: the empty-background ones are merged per channel by the statistics
    assert job.config["histograms"]["m_hh"]["bins"][:4] == [250.0, 300.0, 350.0, 400.0]
    assert job.config["statistics"]["merge_empty_bins"] is True


def test_check_command(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(yaml.safe_dump(BASE))
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**BASE, "executor": {"chunksize": "lots", "chunk_size": 3}}))
    proc = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "check", str(good), str(bad)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stdout.startswith(f"{good}: ok (1 datasets")
    assert proc.stderr.splitlines() == [
        f"{bad}: executor.chunksize: got 'lots'; Input should be a valid integer",
        f"{bad}: executor.chunk_size: unknown key; did you mean 'chunksize'? known: address, checkpoint, chunksize, "
        "cluster, name, workers",
    ]


def test_run_stops_before_reading_any_input(tmp_path):
    # the input file does not exist: the job error is reported, not the missing file
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump({**BASE, "histograms": {"m_hh": {"bins": {"edges": [250, 200]}}}}))
    proc = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "run", str(path), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        f"hhcoffea run: error: {path}: histograms.m_hh.bins.edges: got [250, 200]; edges must increase strictly, "
        "but edge 1 (200) <= edge 0 (250)"]
    assert not (tmp_path / "output").exists()


def test_readme_table_is_the_schema():
    """The README's job-file table is rendered from the schema (``hhcoffea check --schema``)."""
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text()
    start, end = "<!-- job-schema:start -->", "<!-- job-schema:end -->"
    if start not in readme:
        pytest.xfail("README.md has no job-schema block yet: paste `hhcoffea check --schema` between the markers")
    block = readme.split(start, 1)[1].split(end, 1)[0]
    assert block.strip() == schema_markdown().strip(), "README job-file table is stale: regenerate with hhcoffea check --schema"
