"""DNN scorer throughput and the cost of scoring in the full chain.

1. The ``dnn`` scorer on the shipped networks (resonant: 16 features, 5 x 256; non-resonant: 21
   features, 3 x 256), ONNX Runtime with one intra-op thread, batch 4096: events/s per core,
   timed on 200k events of feature columns after one warm-up batch.
2. The full chain: the same emulated samples through coffea's Runner (iterative executor, one
   process) with the min_dr pairer, without and with a DNN selection (``threshold: optimise``):
   events/s of both and the fraction of the run's time scoring costs.

    python benchmarks/scoring.py [--events 200000] [--chain-events 400000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

__all__ = ["chain_cost", "scorer_throughput"]


def scorer_throughput(model: str, n_events: int = 200_000, batch_size: int = 4096, repeats: int = 3) -> float:
    """Best events/s of ``repeats`` passes of the ``dnn`` scorer over ``n_events`` (one thread)."""
    from hhcoffea.plugins.dnn import DNNScorer
    from hhcoffea.scoring import EventColumns

    scorer = DNNScorer(model=model, batch_size=batch_size, threads=1)
    rng = np.random.default_rng(0)
    cols = EventColumns({name: rng.normal(100.0, 50.0, n_events) for name in scorer.features})
    scorer(cols.subset(np.arange(batch_size)))  # warm-up: session creation, first run
    best = np.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        scorer(cols)
        best = min(best, time.perf_counter() - t0)
    return n_events / best


def chain_cost(n_events: int) -> dict:
    """Events/s of a min_dr run without and with a DNN selection, on the same samples."""
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
    times = {}
    for label, extra in (("without", {}), ("with", {
        "scorers": {"dnn": {}},
        "selections": {"dnn_min_dr": {"pairer": "min_dr", "scorer": "dnn", "threshold": "optimise"}},
    })):
        path = root / f"{label}.yaml"
        path.write_text(yaml.safe_dump({**base, **extra}))
        run_job(load_job(path), status=False)  # samples made, caches warm
        best = np.inf
        for _ in range(2):
            result = run_job(load_job(path), status=False)
            best = min(best, result.seconds)
        times[label] = best
    return {"events": n_events, "seconds_without": times["without"], "seconds_with": times["with"],
            "events_per_s_without": n_events / times["without"], "events_per_s_with": n_events / times["with"],
            "scoring_fraction": (times["with"] - times["without"]) / times["with"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--chain-events", type=int, default=400_000)
    args = parser.parse_args()
    for model, shape in (("resonant", "16 features, 5 x 256"), ("nonresonant", "21 features, 3 x 256")):
        rate = scorer_throughput(model, args.events)
        print(f"dnn scorer, {model} ({shape}), ONNX Runtime 1 thread, batch 4096: {rate:,.0f} events/s per core")
    c = chain_cost(args.chain_events)
    print(f"full chain (min_dr, iterative, {c['events']:,} events): {c['events_per_s_without']:,.0f} events/s without "
          f"scoring, {c['events_per_s_with']:,.0f} with a DNN selection; scoring is {c['scoring_fraction']:.1%} of the run")


if __name__ == "__main__":
    main()
