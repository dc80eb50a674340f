"""Scaling of a job in one run: speed-up of 2 workers over 1 (futures, dask LocalCluster), and peak
RSS at 1x and 10x the events (same chunk size), main process and workers, plots included.

    OMP_NUM_THREADS=1 python benchmarks/scale.py [--events 300000] [--chunksize 50000]

Targets (issue 13): 2 workers >= 1.8x one; peak RSS at 10x <= 1.2x the peak at 1x. Each
measurement is a fresh ``hhcoffea run`` process; its time is the run's own ("N events in T s":
inputs read, chunks processed and merged, pools and clusters started and stopped) and its peak
RSS is that of the largest of the run's processes (RUSAGE_CHILDREN of a fresh helper: the main
process or a worker).
Run on an otherwise idle machine: other load on the cores shows up as lost speed-up.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def job(directory: Path, scale: int, n_events: int, chunksize: int, executor: str, workers: int, plots_dir: str) -> Path:
    n_signal, n_qcd = n_events // 5 * scale, n_events // 5 * 4 * scale
    config = {
        "name": f"scale_{scale}x", "output": str(directory / plots_dir), "luminosity": 300.0,
        "samples": {"directory": str(directory / f"data_{scale}x"), "seed": 7, "generate": {
            "X500": {"process": "resonant", "m_x": 500.0, "n_events": n_signal},
            "qcd": {"process": "qcd", "n_events": n_qcd}}},
        "pairers": {"min_dr": {}, "dhh": {}, "chi2": {}, "mass_agnostic": {}},
        "histograms": {"m_hh": {"bins": {"n": 40, "lo": 200.0, "hi": 1400.0}, "systematics": ["jes"]}},
        "systematics": {"jes": {"size": 0.02}},
        "executor": {"name": executor, "workers": workers, "chunksize": chunksize},
    }
    path = directory / f"job_{scale}x_{executor}_{workers}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run(path: Path, plots: bool = False) -> tuple[float, float]:
    """(seconds of the run, peak RSS in MB of its largest process)."""
    cmd = [sys.executable, "-m", "hhcoffea.cli", "run", str(path), "--no-progress", "--no-statistics"]
    if not plots:
        cmd.append("--no-plots")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate()
    if proc.returncode:
        raise SystemExit(f"{path}: run failed:\n{err[-2000:]}")
    import resource  # the largest process among those this one waited for (run in a fresh helper)

    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    match = re.search(r"([\d,]+) events in ([\d.]+) s", out)
    return float(match.group(2)), peak_kb / 1024


def isolated(path: Path, plots: bool = False) -> tuple[float, float]:
    """``run`` in a fresh helper process, so RUSAGE_CHILDREN holds this run's processes only."""
    code = ("import sys, json; sys.path.insert(0, sys.argv[1]); import scale; "
            "print(json.dumps(scale.run(__import__('pathlib').Path(sys.argv[2]), sys.argv[3] == '1')))")
    out = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), str(path), "1" if plots else "0"],
                         capture_output=True, text=True, check=True).stdout
    seconds, peak = __import__("json").loads(out.strip().splitlines()[-1])
    return seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000, help="events at 1x (one fifth signal)")
    parser.add_argument("--chunksize", type=int, default=50_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        start = time.perf_counter()
        for scale in (1, 10):  # samples first (not timed)
            subprocess.run([sys.executable, "-c", "import sys; from hhcoffea.workflow.job import load_job; "
                            "from hhcoffea.workflow.runner import ensure_samples; ensure_samples(load_job(sys.argv[1]))",
                            str(job(d, scale, args.events, args.chunksize, "iterative", 1, "out"))], check=True)
        print(f"samples: {args.events:,} and {10 * args.events:,} events ({time.perf_counter() - start:.0f} s)")
        n = 10 * args.events
        for executor in ("futures", "dask"):
            t1, _ = isolated(job(d, 10, args.events, args.chunksize, executor, 1, "out"))
            t2, _ = isolated(job(d, 10, args.events, args.chunksize, executor, 2, "out"))
            print(f"{executor:8s} {n:,} events: 1 worker {t1:.1f} s, 2 workers {t2:.1f} s: speed-up {t1 / t2:.2f}x "
                  "(target >= 1.8)")
        for executor, workers in (("iterative", 1), ("futures", 2)):
            _, rss1 = isolated(job(d, 1, args.events, args.chunksize, executor, workers, "out_plots"), plots=True)
            _, rss10 = isolated(job(d, 10, args.events, args.chunksize, executor, workers, "out_plots"), plots=True)
            print(f"peak RSS {executor} x{workers} (plots on): 1x {rss1:.0f} MB, 10x {rss10:.0f} MB: ratio "
                  f"{rss10 / rss1:.2f} (target <= 1.2)")
        print(f"cores: {os.cpu_count()}, load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
