"""Plugin discovery: a third-party pairer package installed with pip, broken and duplicate
plugins, unknown names, the entry-point cache, lazy loading (listing imports nothing; a job's
workers import only the plugins it uses) and ``hhcoffea plugins --check`` (hhcoffea.registry)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import hhcoffea.registry as registry
from hhcoffea.histograms import load_histograms
from hhcoffea.pairing import get_pairer

EXAMPLE_PACKAGE = Path(__file__).parent / "thirdparty" / "hhcoffea-example-pairer"
PROBE_PLUGINS = Path(__file__).parent / "probe_plugins"  # module_probe and torch_pairer
BUILTINS = {"min_dr", "dhh", "chi2", "mass_agnostic", "spanet"}


def _env(*paths) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(p) for p in paths] + [env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INDEX"] = "1"
    env["PYTHONWARNINGS"] = "default"
    return env


@pytest.fixture(scope="module")
def example_pairer_site(tmp_path_factory) -> Path:
    """A directory holding the installed ``hhcoffea-example-pairer`` (put it on PYTHONPATH).

    Installed once per module with ``pip install --no-deps --no-build-isolation --target``;
    built from a copy so that no build artefacts land in the source tree.
    """
    root = tmp_path_factory.mktemp("example_pairer")
    source = root / "src"
    shutil.copytree(EXAMPLE_PACKAGE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--quiet",
         "--target", str(target), str(source)],
        capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (target / "hhcoffea_example_pairer.py").is_file()
    return target


@pytest.fixture
def bad_plugins_site(tmp_path) -> Path:
    """Hand-written dist-infos: a plugin whose module raises on import, and two duplicate names.

    On a name clash the registry keeps the built-in, and between third parties the target that
    sorts first; ``zz_dup_plugin`` sorts last, so the built-in min_dr and leading_pairs win.
    """
    site = tmp_path / "bad_site"
    site.mkdir()
    (site / "hhcoffea_broken_plugin.py").write_text('raise RuntimeError("this plugin is broken on purpose")\n')
    (site / "zz_dup_plugin.py").write_text("class Other:\n    pass\n")
    for dist, entry_points in {
        "hhcoffea_broken-0.1": "broken_pairer = hhcoffea_broken_plugin:BrokenPairer",
        "zz_dup-0.1": "min_dr = zz_dup_plugin:Other\nleading_pairs = zz_dup_plugin:Other",
    }.items():
        info = site / f"{dist}.dist-info"
        info.mkdir()
        name, version = dist.split("-")
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[hhcoffea.pairers]\n{entry_points}\n")
    return site


def _dist_info(site: Path, dist: str, entry_points: str) -> None:
    name, version = dist.split("-")
    info = site / f"{dist}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[hhcoffea.pairers]\n{entry_points}\n")


@pytest.fixture
def probe_site(tmp_path) -> list[Path]:
    """PYTHONPATH entries registering tests/probe_plugins: ``module_probe`` (records the modules of
    the process that pairs) and ``torch_pairer`` (imports torch, like an ML plugin)."""
    site = tmp_path / "probe_site"
    _dist_info(site, "hhcoffea_test_probes-0.1",
               "module_probe = hhcoffea_module_probe:ModuleProbePairer\ntorch_pairer = hhcoffea_torch_pairer:TorchPairer")
    return [site, PROBE_PLUGINS]


PROBE = textwrap.dedent(
    """
    import json, sys, warnings
    import awkward as ak
    MODULES = ("hhcoffea_example_pairer", "hhcoffea_broken_plugin", "zz_dup_plugin", "hhcoffea_module_probe",
               "hhcoffea_torch_pairer", "torch", "hhcoffea.plugins", "hhcoffea.plugins.min_dr", "hhcoffea.plugins.chi2")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import hhcoffea.registry as registry
        found = registry.plugins("pairer")
        from hhcoffea.pairing import get_pairer
    imported_by_listing = sorted(m for m in MODULES if m in sys.modules)
    with warnings.catch_warnings(record=True) as load_caught:
        warnings.simplefilter("always")
        broken = []
        for _ in range(2):  # a failed load warns once and is remembered
            try:
                registry.get("pairer", "broken_pairer")
                broken.append("loaded")
            except registry.PluginLoadError as err:
                broken.append("load error: " + str(err))
            except registry.PluginNotFoundError as err:
                broken.append("not found: " + str(err))
        jet = lambda pt, phi, btag: {"pt": pt, "eta": 0.1, "phi": phi, "mass": 5.0, "btag": btag}
        jets = ak.Array([
            [jet(200, 0.0, True), jet(150, 1.0, False), jet(120, 2.0, True), jet(90, 3.0, True),
             jet(60, -1.0, True)],
            [jet(100, 0.0, True), jet(80, 1.0, True), jet(70, 2.0, False)],
        ])
        pairer = get_pairer("leading_pairs")
        result = pairer(jets)
        min_dr_class = registry.get("pairer", "min_dr").loaded.__name__
    print(json.dumps({
        "plugins": {name: [info.target, info.distribution] for name, info in found.items()},
        "warnings": [str(w.message) for w in caught],
        "load_warnings": [str(w.message) for w in load_caught],
        "imported_by_listing": imported_by_listing,
        "imported_after_use": sorted(m for m in MODULES if m in sys.modules),
        "broken": broken,
        "min_dr_class": min_dr_class,
        "pairer_name": pairer.name,
        "indices": result.higgs_jet_indices.tolist(),
        "accepted": result.accepted.tolist(),
    }))
    """
)


def run_probe(*paths) -> dict:
    proc = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=_env(*paths), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_third_party_pairer_is_discovered_and_pairs(example_pairer_site):
    out = run_probe(example_pairer_site)
    assert set(out["plugins"]) == BUILTINS | {"leading_pairs"}
    assert out["plugins"]["leading_pairs"] == ["hhcoffea_example_pairer:LeadingPairsPairer", "hhcoffea-example-pairer"]
    assert out["plugins"]["min_dr"] == ["hhcoffea.plugins.min_dr:MinDeltaRPairer", "hhcoffea"]
    assert out["warnings"] == [] and out["load_warnings"] == []
    assert out["broken"][0].startswith("not found: no pairer named 'broken_pairer'")
    assert out["pairer_name"] == "leading_pairs"
    # tagged jets 0, 2, 3, 4 -> (j0 j2)(j3 j4); the second event has two tags only
    assert out["indices"] == [[[0, 2], [3, 4]], [[-1, -1], [-1, -1]]]
    assert out["accepted"] == [True, False]


def test_listing_imports_no_plugin_and_use_imports_only_that_one(example_pairer_site, bad_plugins_site, probe_site):
    """Entry-point metadata only: neither the plugins nor what they import (torch) until a job uses one."""
    out = run_probe(example_pairer_site, bad_plugins_site, *probe_site)
    assert {"leading_pairs", "broken_pairer", "module_probe", "torch_pairer"} <= set(out["plugins"])
    assert out["imported_by_listing"] == []
    # leading_pairs and min_dr were used, broken_pairer was tried; nothing else was imported
    assert out["imported_after_use"] == ["hhcoffea.plugins", "hhcoffea.plugins.min_dr", "hhcoffea_example_pairer"]


def test_broken_and_duplicate_plugins_warn_without_crashing(example_pairer_site, bad_plugins_site):
    out = run_probe(example_pairer_site, bad_plugins_site)
    # listed from metadata, broken or not; only the duplicates warn at listing time
    assert set(out["plugins"]) == BUILTINS | {"leading_pairs", "broken_pairer"}
    assert not any("broken_pairer" in w for w in out["warnings"])
    duplicates = [w for w in out["warnings"] if "registered twice" in w]
    assert len(duplicates) == 2 and len(out["warnings"]) == 2
    assert any("'min_dr'" in w and "zz_dup_plugin:Other" in w for w in duplicates)
    assert any("'leading_pairs'" in w and "zz_dup_plugin:Other" in w for w in duplicates)
    # loading the broken one warns once, naming it, its module and the error; each get raises
    broken = [w for w in out["load_warnings"] if "broken_pairer" in w]
    assert len(broken) == 1 and len(out["load_warnings"]) == 1
    assert "hhcoffea_broken_plugin" in broken[0] and "broken on purpose" in broken[0]
    assert len(out["broken"]) == 2 and all(b.startswith("load error: ") and "broken on purpose" in b for b in out["broken"])
    assert "\n" not in out["broken"][0]
    # the first-found target is kept: built-in min_dr, the real leading_pairs
    assert out["min_dr_class"] == "MinDeltaRPairer"
    assert out["plugins"]["leading_pairs"][0] == "hhcoffea_example_pairer:LeadingPairsPairer"
    assert out["indices"][0] == [[0, 2], [3, 4]]


def test_plugins_check_loads_everything_and_reports_failures(bad_plugins_site, probe_site):
    env = _env(bad_plugins_site, *probe_site)
    env["COLUMNS"] = "250"  # keep the table's cells whole
    listing = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "plugins"], capture_output=True, text=True, env=env, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "broken_pairer" in listing.stdout and "torch_pairer" in listing.stdout
    assert "broken on purpose" not in listing.stdout + listing.stderr  # nothing was loaded
    checked = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "plugins", "--check"], capture_output=True, text=True, env=env, timeout=300)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    rows = {line.split("│")[2].strip(): line for line in checked.stdout.splitlines() if line.count("│") >= 6}
    assert "failed: " in rows["broken_pairer"] and "broken on purpose" in rows["broken_pairer"]
    for name in BUILTINS | {"module_probe", "torch_pairer"}:
        assert rows[name].split("│")[5].strip() == "ok", rows[name]
    assert "broken pairer plugin broken_pairer (hhcoffea_broken_plugin:BrokenPairer" in checked.stdout
    assert "RuntimeWarning" in checked.stderr and "'broken_pairer'" in checked.stderr  # it warns, as on load


@pytest.fixture
def fresh_registry():
    registry.clear_cache()
    yield registry
    registry.clear_cache()


def test_unknown_pairer_is_a_one_line_error_listing_available(fresh_registry):
    with pytest.raises(registry.PluginNotFoundError) as err:
        get_pairer("min_deltaR")
    message = str(err.value)
    assert "\n" not in message
    assert "'min_deltaR'" in message
    for name in BUILTINS:
        assert name in message
    assert isinstance(err.value, KeyError)  # still catchable as a lookup failure


def test_entry_points_read_once(fresh_registry, monkeypatch):
    calls = []
    real = registry.entry_points

    def counting(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(registry, "entry_points", counting)
    registry.clear_cache()
    first = registry.plugins("pairer")
    assert registry.plugins("pairer") is first
    get_pairer("min_dr")
    get_pairer("chi2", n_higgs=3)
    with pytest.raises(registry.PluginNotFoundError):
        get_pairer("nope")
    assert calls == [{"group": "hhcoffea.pairers"}]
    registry.clear_cache()
    registry.plugins("pairer")
    assert len(calls) == 2  # clear_cache really forgets


def test_job_runs_with_third_party_pairer(example_pairer_site, tmp_path):
    """The installed package's pairer is used by name in a job, on futures workers too."""

    import yaml
    from layouts import toy_events, write_nanoaod

    write_nanoaod(tmp_path / "toy.root", toy_events(3000, seed=9))
    job = {
        "name": "thirdparty",
        "output": "out",
        "datasets": {"toy": {"files": ["toy.root"], "metadata": {"process": "resonant", "xsec_fb": 1.0, "n_generated": 3000}}},
        "pairers": {"leading_pairs": {}, "min_dr": {}},
        "executor": {"name": "futures", "workers": 2, "chunksize": 1000},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    env = _env(example_pairer_site)
    listing = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "plugins"], capture_output=True, text=True, env=env, timeout=120)
    assert "leading_pairs" in listing.stdout and "hhcoffea-example-pairer" in listing.stdout
    proc = subprocess.run([sys.executable, "-m", "hhcoffea.cli", "run", str(tmp_path / "job.yaml"), "--no-progress", "--no-plots"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    hists = load_histograms(tmp_path / "out")
    # m_hh is the same for every pairing of the same four jets; h1's mass is not
    h = hists["h1_mass"][{"dataset": "toy", "region": "four_tag", "systematic": "nominal"}]
    assert set(h.axes["pairer"]) == {"leading_pairs", "min_dr"}
    n_lead = h[{"pairer": "leading_pairs"}].values(flow=True).sum()
    n_mindr = h[{"pairer": "min_dr"}].values(flow=True).sum()
    # both pair every four-tag event, but pick different jets: same total weight, other shapes
    assert n_lead == pytest.approx(n_mindr) and n_lead > 0
    assert not np.allclose(h[{"pairer": "leading_pairs"}].values(), h[{"pairer": "min_dr"}].values())


def test_builtin_wins_a_name_clash_whatever_the_order(monkeypatch):
    """A third-party entry point that sorts before the built-in cannot shadow it (it warns)."""
    from importlib.metadata import EntryPoint

    import hhcoffea.registry as reg

    real = reg.entry_points

    def with_impostor(group):
        impostor = EntryPoint(name="min_dr", value="aaa_first:Impostor", group=group)
        return [impostor, *real(group=group)]

    monkeypatch.setattr(reg, "entry_points", with_impostor)
    reg.clear_cache()
    try:
        with pytest.warns(RuntimeWarning, match="registered twice"):
            found = reg.plugins("pairer")
        assert found["min_dr"].target == "hhcoffea.plugins.min_dr:MinDeltaRPairer"
    finally:
        reg.clear_cache()


def _run_job_recording_modules(tmp_path, env, pairers: dict) -> tuple[int, list[dict]]:
    """Run ``hhcoffea run`` on futures workers with ``module_probe`` among ``pairers``; return the
    CLI's pid and the module records written by the processes that paired."""
    import yaml
    from layouts import toy_events, write_nanoaod

    records = tmp_path / "records"
    records.mkdir()
    write_nanoaod(tmp_path / "toy.root", toy_events(3000, seed=5))
    job = {
        "name": "modules",
        "output": "out",
        "datasets": {"toy": {"files": ["toy.root"], "metadata": {"process": "resonant", "xsec_fb": 1.0, "n_generated": 3000}}},
        "pairers": {"probe": {"plugin": "module_probe", "options": {"record_dir": str(records)}}, **pairers},
        "executor": {"name": "futures", "workers": 2, "chunksize": 1000},
    }
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job))
    proc = subprocess.Popen([sys.executable, "-m", "hhcoffea.cli", "run", str(tmp_path / "job.yaml"), "--no-progress", "--no-plots"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    return proc.pid, [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]


def test_workers_of_a_job_without_ml_plugins_import_no_torch(tmp_path, probe_site):
    """With an ML plugin installed (torch_pairer imports torch), a job that does not use it pairs
    in worker processes that have the processor and the built-in pairers, and no torch."""
    pid, records = _run_job_recording_modules(tmp_path, _env(*probe_site), {"min_dr": {}})
    assert records and all(r["pid"] != pid for r in records)  # paired in the pool's workers
    for r in records:
        assert r["modules"]["hhcoffea.processors.hh4b"] and r["modules"]["hhcoffea.registry"]
        assert r["modules"]["hhcoffea.plugins.min_dr"] and not r["modules"]["hhcoffea.plugins.chi2"]
        assert not r["modules"]["torch"] and not r["modules"]["onnxruntime"]
        assert not r["modules"]["hhcoffea_torch_pairer"]


def test_workers_of_a_job_with_an_ml_plugin_import_torch(tmp_path, probe_site):
    """The same probe sees torch when the job does use the ML plugin (the check above can fail)."""
    pid, records = _run_job_recording_modules(tmp_path, _env(*probe_site), {"torch_pairer": {}})
    assert records and all(r["pid"] != pid for r in records)
    assert all(r["modules"]["torch"] and r["modules"]["hhcoffea_torch_pairer"] for r in records)
