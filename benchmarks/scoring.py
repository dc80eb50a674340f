"""DNN scorer throughput, int8 against fp32 agreement, and the cost of scoring in the full chain.

Times are CPU seconds of this process (``time.process_time``, ``resource.getrusage``), with
``OMP_NUM_THREADS=1`` and one ONNX Runtime thread, so events/s per core stay meaningful on a
loaded machine; the load average is printed.

1. The ``dnn`` scorer on the shipped networks (resonant: 16 features, 5 x 256; non-resonant: 21
   features, 3 x 256), ONNX Runtime, batch 4096, ``precision: int8`` (the default) and ``fp32``:
   events/s per core, the best of 3 interleaved passes over 200k events after one warm-up batch.
   The scorer's own cost around inference (the input matrix) is timed separately.
2. Agreement of int8 with fp32 on the shipped models' validation events (the 25% split of
   ``jobs/train_dnn_*.yaml``; needs ``hhcoffea export features jobs/train_dnn.yaml -o
   output/train_dnn/features``, skipped otherwise): max and 99th percentile of |delta score|,
   weighted AUC of both, and the events selected at the threshold that maximises S/sqrt(B).
3. The full chain: emulated samples through coffea's Runner (iterative executor, one process)
   with the min_dr pairer, without and with a DNN selection (``threshold: optimise``) at both
   precisions (runs interleaved, best of 3): CPU events/s and the fraction of the run that
   scoring costs.

    python benchmarks/scoring.py [--events 200000] [--chain-events 400000] [--no-chain]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy / onnxruntime start their pools

import argparse  # noqa: E402
import resource  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import yaml  # noqa: E402

__all__ = ["agreement", "chain_cost", "scorer_throughput"]

ROOT = Path(__file__).resolve().parent.parent
SHAPES = {"resonant": "16 features, 5 x 256", "nonresonant": "21 features, 3 x 256"}


def _cpu() -> float:
    """CPU seconds of this process and its finished children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def scorer_throughput(model: str, n_events: int = 200_000, batch_size: int = 4096, repeats: int = 3) -> dict:
    """Best CPU events/s per core of ``repeats`` passes of the ``dnn`` scorer over ``n_events`` (one
    thread) at each precision, the passes interleaved so that both see the same load; and of
    building the input matrix alone."""
    from hhcoffea.plugins.dnn import PRECISIONS, DNNScorer
    from hhcoffea.scoring import EventColumns

    scorers = {p: DNNScorer(model=model, batch_size=batch_size, threads=1, precision=p) for p in PRECISIONS}
    rng = np.random.default_rng(0)
    cols = EventColumns({name: rng.normal(100.0, 50.0, n_events) for name in scorers["fp32"].features})
    for scorer in scorers.values():
        scorer(cols.subset(np.arange(batch_size)))  # warm-up: session creation, first run
    jobs = {**{p: (lambda s=s: s(cols)) for p, s in scorers.items()}, "inputs": lambda: scorers["int8"].inputs(cols)}
    best = dict.fromkeys(jobs, np.inf)
    for _ in range(repeats):
        for name, job in jobs.items():
            t0 = time.process_time()
            job()
            best[name] = min(best[name], time.process_time() - t0)
    return {name: n_events / seconds for name, seconds in best.items()}


def _validation(analysis: str):
    """The shipped model's validation events (X, y, w) from its training options, or None."""
    from hhcoffea.ml.dnn import load_training_options, read_training_data

    options = load_training_options(ROOT / "jobs" / f"train_dnn_{analysis}.yaml", {"progress": False})
    if not (Path(options["features"]) / "features.json").is_file():
        return None
    X, y, w, _, _ = read_training_data(options)
    perm = np.random.default_rng(int(options["seed"])).permutation(len(X))  # the split of train_dnn
    val = perm[:max(1, int(round(float(options["validation_fraction"]) * len(X))))]
    return X[val], y[val], w[val]


def agreement(analysis: str) -> dict | None:
    """int8 against fp32 scores of the shipped ``analysis`` model on its validation events."""
    from hhcoffea.ml.dnn import weighted_auc
    from hhcoffea.plugins.dnn import DNNScorer
    from hhcoffea.scoring.selections import SCORE_EDGES, optimise_threshold

    data = _validation(analysis)
    if data is None:
        return None
    X, y, w = data
    scores = {}
    for precision in ("fp32", "int8"):
        session = DNNScorer(model=analysis, precision=precision).session()
        scores[precision] = np.concatenate([session.run(["score"], {"features": X[i:i + 4096]})[0]
                                            for i in range(0, len(X), 4096)]).astype(np.float64)
    delta = np.abs(scores["int8"] - scores["fp32"])

    def binned(p, mask):  # per score bin with flow, as the selections' histograms
        h = np.histogram(p[mask], SCORE_EDGES, weights=w[mask])[0]
        return np.concatenate([[0.0], h, [0.0]])

    sig, bkg = y > 0.5, y < 0.5
    fp = scores["fp32"]
    best = optimise_threshold(binned(fp, sig), binned(fp, bkg), np.concatenate([[0.0], np.histogram(
        fp[bkg], SCORE_EDGES, weights=w[bkg] ** 2)[0], [0.0]]), min_background=0.0, min_background_mc=10.0)
    cut = best["threshold"]
    passed = {p: s > cut for p, s in scores.items()}
    return {
        "n_events": int(len(X)), "max_delta": float(delta.max()), "p99_delta": float(np.quantile(delta, 0.99)),
        "median_delta": float(np.median(delta)),
        "auc_fp32": weighted_auc(scores["fp32"], y, w), "auc_int8": weighted_auc(scores["int8"], y, w),
        "threshold": cut,
        "signal_fp32": float(w[sig & passed["fp32"]].sum()), "signal_int8": float(w[sig & passed["int8"]].sum()),
        "background_fp32": float(w[bkg & passed["fp32"]].sum()),
        "background_int8": float(w[bkg & passed["int8"]].sum()),
        "flipped": int(np.sum(passed["fp32"] != passed["int8"])),
    }


def chain_cost(n_events: int) -> dict:
    """CPU seconds of a min_dr run without and with a DNN selection (int8 and fp32), same samples."""
    from hhcoffea.workflow.job import load_job
    from hhcoffea.workflow.runner import run_job

    root = Path(tempfile.mkdtemp(prefix="hhcoffea_scoring_bench_"))
    base = {
        "name": "bench", "output": "out",
        "samples": {"directory": "data", "seed": 5, "generate": {
            "hh_k1": {"process": "nonresonant", "kappa_lambda": 1.0, "n_events": n_events // 4},
            "qcd": {"process": "qcd", "n_events": 3 * n_events // 4, "working_point": "DL1r_77"},
        }},
        "pairers": {"min_dr": {}},
        "executor": {"name": "iterative", "chunksize": 100_000},
    }
    variants = {"without": {}}
    for precision in ("int8", "fp32"):
        variants[precision] = {
            "scorers": {"dnn": {"options": {"precision": precision}}},
            "selections": {"dnn_min_dr": {"pairer": "min_dr", "scorer": "dnn", "threshold": "optimise"}},
        }
    paths = {}
    for label, extra in variants.items():
        paths[label] = root / f"{label}.yaml"
        paths[label].write_text(yaml.safe_dump({**base, **extra}))
        run_job(load_job(paths[label]), status=False)  # samples made, caches and sessions warm
    seconds = dict.fromkeys(variants, np.inf)
    for _ in range(3):  # interleaved, so that the variants see the same load
        for label, path in paths.items():
            t0 = _cpu()
            run_job(load_job(path), status=False)
            seconds[label] = min(seconds[label], _cpu() - t0)
    out = {"events": n_events, "seconds": seconds,
           "events_per_s": {k: n_events / v for k, v in seconds.items()}}
    out["scoring_fraction"] = {p: (seconds[p] - seconds["without"]) / seconds[p] for p in ("int8", "fp32")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--chain-events", type=int, default=400_000)
    parser.add_argument("--no-chain", action="store_true", help="skip the full-chain runs")
    args = parser.parse_args()
    import onnxruntime

    print(f"load average {' '.join(Path('/proc/loadavg').read_text().split()[:3]) if Path('/proc/loadavg').exists() else '?'}; "
          f"onnxruntime {onnxruntime.__version__}; OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}; CPU time per core")
    for model in ("resonant", "nonresonant"):
        r = scorer_throughput(model, args.events)
        print(f"dnn scorer, {model} ({SHAPES[model]}), ONNX Runtime 1 thread, batch 4096: int8 {r['int8']:,.0f} "
              f"events/s per core, fp32 {r['fp32']:,.0f} (int8 x{r['int8'] / r['fp32']:.2f}); "
              f"input matrix alone {r['inputs']:,.0f} events/s")
    for model in ("resonant", "nonresonant"):
        a = agreement(model)
        if a is None:
            print(f"int8 vs fp32, {model}: skipped (no output/train_dnn/features; see the docstring)")
            continue
        print(f"int8 vs fp32, {model}, {a['n_events']:,} validation events: |delta score| max {a['max_delta']:.4f}, "
              f"99% {a['p99_delta']:.4f}, median {a['median_delta']:.5f}; AUC fp32 {a['auc_fp32']:.5f}, "
              f"int8 {a['auc_int8']:.5f}; at the S/sqrt(B)-optimal p_th {a['threshold']:.4f}: signal "
              f"{a['signal_fp32']:.1f} vs {a['signal_int8']:.1f}, background {a['background_fp32']:.2f} vs "
              f"{a['background_int8']:.2f} (weighted), {a['flipped']} events change side")
    if args.no_chain:
        return
    c = chain_cost(args.chain_events)
    e, f = c["events_per_s"], c["scoring_fraction"]
    print(f"full chain (min_dr, iterative, {c['events']:,} events, CPU time): {e['without']:,.0f} events/s without "
          f"scoring; with a DNN selection {e['int8']:,.0f} (int8, scoring {f['int8']:.1%} of the run), "
          f"{e['fp32']:,.0f} (fp32, {f['fp32']:.1%})")


if __name__ == "__main__":
    main()
