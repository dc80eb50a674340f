"""benchmarks/spanet_size.py: the shipped-vs-seeds'-size SPA-Net comparison (errors and verdict)."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "spanet_size.py"
_spec = importlib.util.spec_from_file_location("spanet_size", _PATH)
spanet_size = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(spanet_size)


def _metrics(tmp_path: Path, name: str, eff: dict, n_events: int = 1000) -> Path:
    """A trainer-style metrics.json with given event efficiencies per category (200 events each)."""
    by_jets = {k: {"events": 200, "event_efficiency": v, "higgs_efficiency": v} for k, v in eff.items()}
    by_jets["total"] = {"events": 600, "event_efficiency": float(np.mean(list(eff.values()))),
                        "higgs_efficiency": float(np.mean(list(eff.values())))}
    final = {"epoch": 9, "testing": {"n_events": n_events, "n_full": 600, "by_jets": by_jets}}
    path = tmp_path / name / "metrics.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"history": [final], "final": final}))
    return path


def test_paired_error_is_mcnemar():
    # 100 events of one category: 10 only the shipped model gets right, 30 only the other, 50 both
    found_a = np.array([2] * 10 + [0] * 30 + [2] * 50 + [0] * 10)
    found_b = np.array([0] * 10 + [2] * 30 + [2] * 50 + [0] * 10)
    cat = np.array(["5"] * 100)
    out = spanet_size._paired({"category": cat, "found": found_a, "n_higgs": 2},
                              {"category": cat, "found": found_b, "n_higgs": 2})
    diff, err = out["5"]["event"]
    assert diff == pytest.approx(-0.2)
    # per-event differences d in {-1, 0, 1}: std/sqrt(n) with ddof 1
    d = np.array([1] * 10 + [-1] * 30 + [0] * 60, float)
    assert err == pytest.approx(d.std(ddof=1) / 10)
    assert out["5"]["shipped_event"] == pytest.approx(0.6) and out["5"]["seeds_event"] == pytest.approx(0.8)
    assert out["4"]["n"] == 0 and np.isnan(out["4"]["event"][1]) and out["total"]["n"] == 100


def test_verdict_and_exit_status(tmp_path, capsys):
    seeds = _metrics(tmp_path, "seeds", {"4": 0.90, "5": 0.90, ">=6": 0.90})
    close = _metrics(tmp_path, "close", {"4": 0.89, "5": 0.90, ">=6": 0.91})
    far = _metrics(tmp_path, "far", {"4": 0.90, "5": 0.90, ">=6": 0.75})
    none = tmp_path / "none.json"
    args = ["--seeds", str(seeds), "--no-paired", "--pairing", str(none)]
    assert spanet_size.main(["--shipped", str(close), *args]) == 0
    assert "no worse" in capsys.readouterr().out
    assert spanet_size.main(["--shipped", str(far), *args]) == 1
    out = capsys.readouterr().out
    # >=6: 0.75 vs 0.90 on 200 events each, independent binomial errors
    err = np.hypot(np.sqrt(0.75 * 0.25 / 200), np.sqrt(0.9 * 0.1 / 200))
    assert f"-0.1500 ± {err:.4f} (indep.)" in out and "WORSE" in out


def test_different_test_sets_refused(tmp_path):
    a = _metrics(tmp_path, "a", {"4": 0.9, "5": 0.9, ">=6": 0.9}, n_events=1000)
    b = _metrics(tmp_path, "b", {"4": 0.9, "5": 0.9, ">=6": 0.9}, n_events=999)
    with pytest.raises(SystemExit, match="different testing sets"):
        spanet_size.main(["--shipped", str(a), "--seeds", str(b), "--no-paired"])


def test_headers_name_each_runs_size_from_its_options(tmp_path, capsys):
    import yaml

    seeds = _metrics(tmp_path, "seeds", {"4": 0.9, "5": 0.9, ">=6": 0.9})
    candidate = _metrics(tmp_path, "candidate", {"4": 0.9, "5": 0.9, ">=6": 0.9})
    for path, (hidden, central, branch, epochs) in ((seeds, (64, 4, 3, 10)), (candidate, (48, 2, 1, 30))):
        (path.parent / "options.yaml").write_text(yaml.safe_dump(
            {"hidden_dim": hidden, "num_encoder_layers": central, "num_branch_encoder_layers": branch, "epochs": epochs}))
    spanet_size.main(["--shipped", str(candidate), "--seeds", str(seeds), "--no-paired", "--pairing", str(tmp_path / "x")])
    head = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| jets")][0]
    assert "shipped (hidden 48, 2+1 layers, 30 epochs)" in head and "seeds' size (hidden 64, 4+3 layers, 10 epochs)" in head
