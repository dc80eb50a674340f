"""Benchmark (and calibration) of the sample emulation, hhcoffea.emulation.

    python benchmarks/generate.py                 # CPU events/s in memory, and events/s
                                                  # including writing, per process
    python benchmarks/generate.py --cpu-only      # only the CPU rates in memory
    python benchmarks/generate.py -n 1000000      # more events
    python benchmarks/generate.py --calibrate     # re-measure the four-tag efficiencies behind
                                                  # the resonant/QCD cross-section tables
    python benchmarks/generate.py --n-shower 0    # without the showered (Pythia 8) rate

Two rates per process:

- CPU in memory: events / ``time.process_time()`` of ``iter_chunks`` (hard process + detector
  emulation, no writing; user + system time of this process, so meaningful on a loaded machine),
  best and median of ``--repeat`` runs after one warm-up chunk of each process (imports, and the
  heap grown to a chunk's peak: a fresh process pays ~0.3 s of page faults once per chunk size);
- with writing: wall-clock time of ``generate()`` (generation + writing the ROOT file and its
  JSON sidecar) divided by the number of events, best of ``--repeat``.

Run with OMP_NUM_THREADS=1 (one core).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from hhcoffea import constants as C
from hhcoffea.emulation import generate, iter_chunks
from hhcoffea.emulation.calibration import four_tag_passed, leading_bjets_mass, resonant_accepted_target
from hhcoffea.emulation.xsec import TTBAR_XSEC_FB

SAMPLES = {
    "resonant": {"m_x": 500.0},
    "nonresonant": {"kappa_lambda": 1.0},
    "qcd": {},
    "ttbar": {},
}
CALIBRATION_MASSES = (260, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 1100, 1200, 1400, 1600, 2000, 2500, 3000)


def benchmark_cpu(n_events: int, repeat: int) -> dict[str, list[float]]:
    """CPU rate in memory per process (events / process_time), every repetition."""
    from hhcoffea.emulation.chunks import CHUNK_SIZE

    print(f"# CPU in memory (process_time, no writing), load average {os.getloadavg()[0]:.2f}")
    rates = {}
    for process, kwargs in SAMPLES.items():
        for _ in iter_chunks(process, CHUNK_SIZE, seed=99, **kwargs):  # warm-up
            pass
        rates[process] = []
        for i in range(repeat):
            start = time.process_time()
            for _ in iter_chunks(process, n_events, seed=i, **kwargs):
                pass
            rates[process].append(n_events / (time.process_time() - start))
        best, median = max(rates[process]), statistics.median(rates[process])
        print(f"{process:12s} {best:12,.0f} events/s CPU  (best of {repeat}; median {median:,.0f}; n = {n_events:,})")
    return rates


def benchmark(n_events: int, repeat: int, workdir: Path) -> dict[str, float]:
    generate("resonant", 2000, workdir / "warmup.root", m_x=500.0)  # imports, grids
    generate("nonresonant", 2000, workdir / "warmup.root")
    print("# with writing (wall clock of generate(): ROOT file + sidecar)")
    rates = {}
    for process, kwargs in SAMPLES.items():
        best = 0.0
        for i in range(repeat):
            path = workdir / f"{process}.root"
            start = time.perf_counter()
            generate(process, n_events, path, seed=i, **kwargs)
            best = max(best, n_events / (time.perf_counter() - start))
        size = path.stat().st_size / n_events
        rates[process] = best
        print(f"{process:12s} {best:12,.0f} events/s  (n = {n_events:,}, best of {repeat}, {size:.0f} bytes/event)")
    total = sum(n_events for _ in SAMPLES) / sum(n_events / r for r in rates.values())
    print(f"{'all':12s} {total:12,.0f} events/s  (harmonic mean over processes)")
    return rates


def benchmark_shower(n_events: int, workers: int, workdir: Path) -> float:
    """Showered generation (Pythia 8 + FastJet, --shower pythia) of non-resonant SM hh."""
    from hhcoffea.emulation.shower import available

    if not available():
        print("showered     (pythia8mc/fastjet not installed: pip install 'hhcoffea[shower]')")
        return float("nan")
    start = time.perf_counter()
    generate("nonresonant", n_events, workdir / "showered.root", seed=1, shower="pythia", workers=workers)
    wall = time.perf_counter() - start
    rate = n_events / wall
    print(f"{'showered':12s} {rate:12,.0f} events/s  (nonresonant, --shower pythia, n = {n_events:,}, "
          f"{workers} worker(s); {rate / workers:,.0f} per worker)")
    return rate


def calibrate(n_events: int, seed: int = 1) -> None:
    wp = C.RESONANT_WORKING_POINT
    print(f"# four-tag efficiencies, {wp}, {n_events:,} events each, seed {seed}")
    effs, table = {}, {}
    for m_x in CALIBRATION_MASSES:
        n_pass = 0
        for chunk in iter_chunks("resonant", n_events, seed=seed, m_x=float(m_x), working_point=wp):
            n_pass += int(four_tag_passed(chunk["Jet"]).sum())
        eff = n_pass / n_events
        effs[float(m_x)] = eff
        table[float(m_x)] = float(resonant_accepted_target(m_x)) / eff
        err = np.sqrt(eff * (1 - eff) / n_events)
        print(f"#   m_X = {m_x:5d}: eff = {eff:.5f} +- {err:.5f}, sigma x BR = {table[float(m_x)]:.6g} fb")
    print("RESONANT_FOUR_TAG_EFFICIENCY = {" + ", ".join(f"{m:g}: {e:.5f}" for m, e in effs.items()) + "}")
    print("RESONANT_XSEC_TABLE = {" + ", ".join(f"{m:g}: {x:.5g}" for m, x in table.items()) + "}")
    n_pass, n_qcd = 0, 4 * n_events
    masses = []
    for chunk in iter_chunks("qcd", n_qcd, seed=seed, working_point=wp):
        sel = four_tag_passed(chunk["Jet"])
        n_pass += int(sel.sum())
        masses.append(leading_bjets_mass(chunk["Jet"][sel]))
    eff = n_pass / n_qcd
    m4j = np.concatenate(masses)
    print(f"QCD_FOUR_TAG_EFFICIENCY = {eff:.6f}  # +- {np.sqrt(eff * (1 - eff) / n_qcd):.6f}")
    print(f"QCD_XSEC_FB = {C.QCD_4B_XSEC_AFTER_FOUR_TAG / eff:.6g}")
    for lo, hi in ((350, 550), (800, 1050)):
        print(f"#   QCD four-tag m_4j fraction in [{lo}, {hi}]: {np.mean((m4j > lo) & (m4j < hi)):.4f}")
    n_pass = sum(int(four_tag_passed(c["Jet"]).sum()) for c in iter_chunks("ttbar", n_events, seed=seed))
    print(f"#   ttbar four-tag efficiency {n_pass / n_events:.5f} -> {TTBAR_XSEC_FB * n_pass / n_events:.4g} fb (not calibrated)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--n-events", type=int, default=500_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--calibrate", action="store_true", help="measure four-tag efficiencies instead")
    parser.add_argument("--n-shower", type=int, default=1000, help="showered events to time (0: skip)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes of the showered run")
    parser.add_argument("--cpu-only", action="store_true", help="only the CPU rates in memory")
    args = parser.parse_args()
    if args.calibrate:
        calibrate(args.n_events)
        return 0
    benchmark_cpu(args.n_events, args.repeat)
    if args.cpu_only:
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        benchmark(args.n_events, args.repeat, Path(tmp))
        if args.n_shower > 0:
            benchmark_shower(args.n_shower, args.workers, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
