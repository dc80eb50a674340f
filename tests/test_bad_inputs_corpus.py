"""A corpus of bad inputs through one job: each bad file is reported with its reason, the rest is
processed; ``on_bad_file: fail`` stops at the first with one line."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import uproot
import yaml
from layouts import toy_events, write_nanoaod
from test_bad_inputs import _drop_events

from hhcoffea.workflow import runner as runner_module
from hhcoffea.workflow.job import load_job
from hhcoffea.workflow.runner import run_job


def _drop_jets(ev: dict) -> dict:
    counts, fields = ev["jets"]
    return {**ev, "jets": (np.zeros_like(counts), {k: v[:0] for k, v in fields.items()})}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    d = tmp_path_factory.mktemp("corpus")
    good = toy_events(1200, seed=4)
    write_nanoaod(d / "good.root", good)
    write_nanoaod(d / "full.root", good)
    size = (d / "full.root").stat().st_size
    with open(d / "full.root", "rb") as f:
        (d / "truncated.root").write_bytes(f.read(size // 2))
    (d / "notes.root").write_text("these are my notes, not a ROOT file\n")
    with uproot.recreate(d / "no_tree.root") as f:
        f["comment"] = "a ROOT file with a string and no tree"
    write_nanoaod(d / "no_btag.root", good, drop=("Jet_btag",))
    write_nanoaod(d / "jetless.root", _drop_jets(toy_events(300, seed=5)))
    write_nanoaod(d / "vanishing.root", toy_events(500, seed=6))
    write_nanoaod(d / "empty.root", _drop_events(toy_events(10), np.zeros(10, dtype=bool)))
    return d


BAD = {  # file -> words of the reason
    "truncated.root": "truncated ROOT file",
    "notes.root": "not a readable ROOT file",
    "no_tree.root": "found no trees",
    "no_btag.root": "lacks branch 'Jet_btag'",
}


def _job(directory, files, **extra):
    config = {
        "name": "corpus", "output": str(directory / "out"), "luminosity": 100.0,
        "datasets": {"toy": {"files": [str(directory / f) for f in files],
                             "metadata": {"process": "resonant", "xsec_fb": 1.0, "n_generated": 10_000}}},
        "pairers": {"min_dr": {}},
        "executor": {"name": "iterative", "chunksize": 400},
        **extra,
    }
    path = directory / f"job_{len(files)}_{extra.get('on_bad_file', 'skip')}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_bad_files_are_reported_and_the_rest_processed(corpus, monkeypatch):
    files = ["good.root", *BAD, "empty.root", "jetless.root", "vanishing.root"]
    real_build = runner_module.build_fileset

    def build_then_lose_a_file(*args, **kwargs):
        fileset = real_build(*args, **kwargs)
        (corpus / "vanishing.root").rename(corpus / "vanished.root")  # checked, then gone before it is read
        return fileset

    monkeypatch.setattr(runner_module, "build_fileset", build_then_lose_a_file)
    try:
        result = run_job(load_job(_job(corpus, files)), status=False)
    finally:
        (corpus / "vanished.root").rename(corpus / "vanishing.root")
    skipped = {s["file"].rsplit("/", 1)[-1]: s["reason"] for s in result.fileset.skipped}
    assert set(skipped) == set(BAD)
    for name, words in BAD.items():
        assert name in skipped[name] and words in skipped[name], skipped[name]
        assert len(skipped[name].splitlines()) == 1
    # good (1200), empty (0) and jetless (300) are processed; the file that vanished lost its 500 events
    assert result.output["events_in"]["toy"] == 1500
    assert result.lost_events() == {"toy": 500}
    flow = result.output["cutflow"]["toy"]["min_dr"]["resonant"]
    assert flow["all"][0] == 1500 and flow["four_tag"][0] > 0


def test_fail_stops_at_the_first_bad_file_with_one_line(corpus):
    path = _job(corpus, ["good.root", "truncated.root", "notes.root"], on_bad_file="fail")
    proc = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "run", str(path), "--no-progress", "--no-plots"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr[-2000:]
    assert "truncated.root" in lines[0] and "truncated ROOT file" in lines[0] and "notes.root" not in lines[0]
    assert not (corpus / "out").exists()
