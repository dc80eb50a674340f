"""Shipped SPA-Net model against one of the seeds' size: pairing efficiency on the same test set.

Issue 11 asks that the shipped model (hidden 48, 2 central + 1 branch encoder layers) pairs no
worse than a model of the seeds' size (hidden 64, 4 + 3 layers, 10 jets) trained on the same data
with the same options (``jobs/spanet_default.yaml``, ``jobs/spanet_seeds_size.yaml``). Prints, by
jet multiplicity (4, 5, >= 6 jets with pT >= 20 GeV), the event and Higgs efficiency of both, and
their difference (shipped - seeds' size) with its error and pull, from the ``metrics.json`` files
the trainer writes.

Errors: binomial, ``sqrt(p (1 - p) / n)`` (Higgs: over 2 n Higgs, ignoring the correlation of the
two Higgs of an event). Both models see the same events, so their errors are correlated; when the
checkpoints sit next to the metrics files, the script re-evaluates both on the testing file and
also gives the paired error of the difference (per-event differences, as McNemar's test), which
is the one to judge by. "worse" means the shipped model is below by more than 2 paired sigma in
some category (exit status 1).

``--shipped`` may name any run (e.g. a candidate for the shipped model); the column headers give each
run's size and epochs from its options.yaml.

With ``--pairing`` (the ``pairing_efficiency.json`` of ``hhcoffea run jobs/spanet_size_pairing.yaml``)
it adds the efficiencies through the ``spanet`` pairer in the processor (independent binomial errors).

    python benchmarks/spanet_size.py [--shipped output/spanet_training/run/metrics.json]
        [--seeds output/spanet_seeds_size/run/metrics.json] [--no-paired] [--pairing FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["main", "read_metrics", "size_label"]

ROOT = Path(__file__).resolve().parents[1]
CATEGORIES = ("4", "5", ">=6", "total")
#: pull below which the shipped model counts as worse
WORSE_PULL = -2.0


def read_metrics(path: Path, split: str = "testing") -> dict:
    """The final-epoch metrics of ``split`` (testing or validation) from a trainer's metrics.json."""
    try:
        final = json.loads(Path(path).read_text())["final"]
    except (OSError, ValueError, KeyError) as err:
        raise SystemExit(f"{path}: not a metrics.json of hhcoffea train spanet ({err})") from None
    if split not in final:
        raise SystemExit(f"{path}: no '{split}' metrics (train with a testing_file)")
    return {"epoch": final["epoch"] + 1, **final[split]}


def size_label(metrics_path: Path) -> str:
    """``"hidden 32, 2+1 layers, 10 epochs"`` from the options.yaml next to a metrics.json ("" if none)."""
    import yaml

    try:
        o = yaml.safe_load((Path(metrics_path).parent / "options.yaml").read_text())
        return (f"hidden {o['hidden_dim']}, {o['num_encoder_layers']}+{o['num_branch_encoder_layers']} layers, "
                f"{o['epochs']} epochs")
    except (OSError, KeyError, TypeError, ValueError):
        return ""


def _binomial(p: float, n: int) -> float:
    return float(np.sqrt(p * (1 - p) / n)) if n else float("nan")


def _found_per_event(run_dir: Path, testing_file: str) -> dict:
    """Per fully reconstructable test event: jet category, Higgs found (0, 1, 2) by the checkpoint."""
    from hhcoffea.ml.spanet.dataset import read_h5
    from hhcoffea.ml.spanet.decoding import decode_assignments
    from hhcoffea.ml.spanet.metrics import jet_multiplicity_category
    from hhcoffea.ml.spanet.training import load_checkpoint, model_from_checkpoint, predict

    model, info = model_from_checkpoint(load_checkpoint(run_dir / "checkpoint.pt"))
    data = read_h5(testing_file, info)
    pairs, _ = decode_assignments(predict(model, data)["assignment"], data["source_mask"])
    # the matching of hhcoffea.ml.spanet.metrics.pairing_metrics, kept per event
    pairs, truth = np.sort(pairs, axis=2), np.sort(data["targets"], axis=2)
    full = (truth >= 0).all(axis=(1, 2))
    same = (pairs[:, :, None, :] == truth[:, None, :, :]).all(axis=3) & (pairs[:, :, None, 0] >= 0)
    found = same.any(axis=1).sum(axis=1)
    return {"category": jet_multiplicity_category(data["n_jets"])[full], "found": found[full],
            "n_higgs": truth.shape[1]}


def _paired(shipped: dict, seeds: dict) -> dict:
    """Paired errors of the differences per category: std of per-event differences / sqrt(n)."""
    out = {}
    for name in CATEGORIES:
        sel = shipped["category"] == name if name != "total" else np.ones(len(shipped["found"]), bool)
        n, h = int(sel.sum()), shipped["n_higgs"]
        a, b = shipped["found"][sel], seeds["found"][sel]
        if n < 2:  # no error from fewer than two events
            out[name] = {"n": n, "event": (np.nan, np.nan), "higgs": (np.nan, np.nan),
                         "shipped_event": np.nan, "seeds_event": np.nan}
            continue
        event = (a == h).astype(float) - (b == h).astype(float)
        higgs = (a - b) / h
        out[name] = {"n": n, "event": (event.mean(), event.std(ddof=1) / np.sqrt(n)),
                     "higgs": (higgs.mean(), higgs.std(ddof=1) / np.sqrt(n)),
                     "shipped_event": float((a == h).mean()), "seeds_event": float((b == h).mean())}
    return out


def _cell(p, err):
    return f"{p:.4f} ± {err:.4f}"


def _table(shipped: dict, seeds: dict, paired: dict | None, labels: tuple[str, str] = ("", "")) -> tuple[list[str], bool]:
    names = [f"{name} ({label})" if label else name for name, label in zip(("shipped", "seeds' size"), labels)]
    head = f"| jets | events | quantity | {names[0]} | {names[1]} | shipped − seeds | pull |"
    lines = [head, "|---|---:|---|---:|---:|---:|---:|"]
    worse = False
    for name in CATEGORIES:
        s, t = shipped["by_jets"][name], seeds["by_jets"][name]
        n = s["events"]
        for key, label, n_trials in (("event_efficiency", "event eff.", n), ("higgs_efficiency", "Higgs eff.", 2 * n)):
            ps, pt = s[key], t[key]
            es, et = _binomial(ps, n_trials), _binomial(pt, n_trials)
            diff = ps - pt
            if paired is not None:
                err = paired[name]["event" if key == "event_efficiency" else "higgs"][1]
                err_text = f"{diff:+.4f} ± {err:.4f} (paired; indep. ± {np.hypot(es, et):.4f})"
            else:
                err = float(np.hypot(es, et))
                err_text = f"{diff:+.4f} ± {err:.4f} (indep.)"
            pull = diff / err if err > 0 else float("nan")
            worse |= bool(pull < WORSE_PULL)
            lines.append(f"| {name} | {n} | {label} | {_cell(ps, es)} | {_cell(pt, et)} | {err_text} | {pull:+.1f} |")
    return lines, worse


def _pairing_table(path: Path, shipped_label: str, seeds_label: str) -> list[str]:
    eff = json.loads(path.read_text())
    lines = ["| dataset | jets (pT ≥ 20) | events | event eff. shipped | event eff. seeds' size | shipped − seeds |",
             "|---|---|---:|---:|---:|---:|"]
    for dataset, by_pairer in eff.items():
        if shipped_label not in by_pairer or seeds_label not in by_pairer:
            raise SystemExit(f"{path}: dataset {dataset} lacks pairer {shipped_label!r} or {seeds_label!r}")
        a, b = by_pairer[shipped_label], by_pairer[seeds_label]
        rows = [("all", a["all"], b["all"])] + [(k, a["all_jets_20"][k], b["all_jets_20"][k]) for k in a["all_jets_20"]]
        for label, ea, eb in rows:
            n = round(ea["events"] * (ea["reconstructable_fraction"] or 0))
            if not n or ea["event_efficiency"] is None or eb["event_efficiency"] is None:
                continue
            sa, sb = _binomial(ea["event_efficiency"], n), _binomial(eb["event_efficiency"], n)
            lines.append(f"| {dataset} | {label} | {n} | {_cell(ea['event_efficiency'], sa)} | "
                         f"{_cell(eb['event_efficiency'], sb)} | {ea['event_efficiency'] - eb['event_efficiency']:+.4f} "
                         f"± {np.hypot(sa, sb):.4f} |")
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipped", type=Path, default=ROOT / "output" / "spanet_training" / "run" / "metrics.json")
    parser.add_argument("--seeds", type=Path, default=ROOT / "output" / "spanet_seeds_size" / "run" / "metrics.json")
    parser.add_argument("--split", choices=("testing", "validation"), default="testing")
    parser.add_argument("--no-paired", action="store_true", help="skip re-evaluating the checkpoints")
    parser.add_argument("--pairing", type=Path, default=ROOT / "output" / "spanet_seeds_size" / "pairing" / "pairing_efficiency.json",
                        help="pairing_efficiency.json of jobs/spanet_size_pairing.yaml (skipped when missing)")
    args = parser.parse_args(argv)

    shipped, seeds = read_metrics(args.shipped, args.split), read_metrics(args.seeds, args.split)
    if shipped["n_events"] != seeds["n_events"] or shipped["n_full"] != seeds["n_full"]:
        raise SystemExit(f"{args.shipped}, {args.seeds}: different {args.split} sets "
                         f"({shipped['n_events']} and {seeds['n_events']} events); train both on the same data")
    print(f"{args.split} set: {shipped['n_events']} events, {shipped['n_full']} fully reconstructable; "
          f"epochs: shipped {shipped['epoch']}, seeds' size {seeds['epoch']}")

    paired = None
    ckpts = [p.parent / "checkpoint.pt" for p in (args.shipped, args.seeds)]
    if not args.no_paired and args.split == "testing" and all(p.exists() for p in ckpts):
        import yaml

        testing = yaml.safe_load((args.shipped.parent / "options.yaml").read_text())["testing_file"]
        per_event = [_found_per_event(p.parent, testing) for p in ckpts]
        paired = _paired(*per_event)
        # the re-evaluation must reproduce the trainer's numbers, else the paired errors mean nothing
        for metrics, key in ((shipped, "shipped_event"), (seeds, "seeds_event")):
            for name in CATEGORIES:
                if abs(paired[name][key] - metrics["by_jets"][name]["event_efficiency"]) > 1e-9:
                    raise SystemExit(f"{testing}: checkpoint re-evaluation ({name} jets) differs from metrics.json; "
                                     "are checkpoint and metrics from the same run?")
    lines, worse = _table(shipped, seeds, paired, (size_label(args.shipped), size_label(args.seeds)))
    print("\n".join(lines))
    print(f"\nshipped model {'WORSE' if worse else 'no worse'} than the seeds' size "
          f"(worse: below by more than {-WORSE_PULL:.0f} sigma in some category)")
    if args.pairing.exists():
        print(f"\nthrough the spanet pairer ({args.pairing}):")
        print("\n".join(_pairing_table(args.pairing, "spanet", "spanet_seeds_size")))
    return 1 if worse else 0


if __name__ == "__main__":
    raise SystemExit(main())
