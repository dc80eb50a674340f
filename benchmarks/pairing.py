"""Throughput of the built-in pairers: events per second on one core.

    OMP_NUM_THREADS=1 python benchmarks/pairing.py [--events 200000] [--python-events 5000]

Random kinematics (pT-ordered, 20-400 GeV, |eta| < 2.5, uniform phi, masses 0-30 GeV) in events
of exactly 4, 5 and 6 jets, all b-tagged ("tagged") or each jet tagged with probability 0.8
("mix"). Each vectorised pairer is timed on the whole jagged awkward input (including its own
awkward -> numpy conversion) as the best of ``--repeat`` runs (best-of, like timeit, because
other processes on a shared machine only ever add time). Beside them, straightforward
per-event Python versions of min-ΔR and χ² (HH) run on the first ``--python-events`` events of
each sample (their input is converted to Python lists beforehand, outside the timing, which
flatters them). Target: >= 1e6 events/s for every HH pairer.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # single core (before numpy is imported)

import argparse
import math
import time

import awkward as ak
import numpy as np

from hhcoffea.constants import CHI2_HIGGS_MASS
from hhcoffea.pairing import get_pairer

PAIRERS = [  # (label, plugin, options, minimum jets)
    ("min_dr", "min_dr", {}, 4),
    ("dhh", "dhh", {}, 4),
    ("chi2 HH", "chi2", {}, 4),
    ("chi2 HHH", "chi2", {"n_higgs": 3}, 6),
    ("mass_agnostic", "mass_agnostic", {}, 4),
    ("chi2 HH exhaustive", "chi2", {"exhaustive": True}, 4),
]
HH_TARGET = 1.0e6


def make_jets(n_events: int, n_jets: int, p_tag: float, seed: int) -> ak.Array:
    rng = np.random.default_rng(seed)
    shape = (n_events, n_jets)
    pt = -np.sort(-rng.uniform(20.0, 400.0, shape), axis=1)
    fields = {
        "pt": pt,
        "eta": rng.uniform(-2.5, 2.5, shape),
        "phi": rng.uniform(-math.pi, math.pi, shape),
        "mass": rng.uniform(0.0, 30.0, shape),
        "btag": rng.random(shape) < p_tag,
    }
    counts = np.full(n_events, n_jets)
    return ak.zip({k: ak.unflatten(v.ravel(), counts) for k, v in fields.items()})


# --- per-event Python versions (the comparison) ---------------------------------------------

CODES = (((0, 1), (2, 3)), ((0, 2), (1, 3)), ((0, 3), (1, 2)))


def _p4(pt, eta, phi, m):
    px, py, pz = pt * math.cos(phi), pt * math.sin(phi), pt * math.sinh(eta)
    return px, py, pz, math.sqrt(px * px + py * py + pz * pz + m * m)


def python_min_dr(events):
    out = []
    for ev in events:
        tagged = [j for j in ev if j["btag"]][:4]
        if len(tagged) < 4:
            out.append(None)
            continue
        best, best_code = math.inf, 0
        for code, pairs in enumerate(CODES):
            values = []
            for a, b in pairs:
                ja, jb = tagged[a], tagged[b]
                pa, pb = _p4(ja["pt"], ja["eta"], ja["phi"], ja["mass"]), _p4(jb["pt"], jb["eta"], jb["phi"], jb["mass"])
                dphi = (ja["phi"] - jb["phi"] + math.pi) % (2 * math.pi) - math.pi
                values.append((math.hypot(pa[0] + pb[0], pa[1] + pb[1]), math.hypot(ja["eta"] - jb["eta"], dphi)))
            dr = values[1][1] if values[1][0] > values[0][0] else values[0][1]
            if dr < best:
                best, best_code = dr, code
        out.append(best_code)
    return out


def python_chi2(events, higgs_mass=CHI2_HIGGS_MASS):
    out = []
    for ev in events:
        order = [j for j in ev if j["btag"]] + [j for j in ev if not j["btag"]]
        if len(order) < 4:
            out.append(None)
            continue
        p4 = [_p4(j["pt"], j["eta"], j["phi"], j["mass"]) for j in order[:4]]
        best, best_code = math.inf, 0
        for code, pairs in enumerate(CODES):
            chi2 = 0.0
            for a, b in pairs:
                px, py, pz, e = (p4[a][i] + p4[b][i] for i in range(4))
                chi2 += (math.sqrt(max(e * e - px * px - py * py - pz * pz, 0.0)) - higgs_mass) ** 2
            if chi2 < best:
                best, best_code = chi2, code
        out.append(best_code)
    return out


PYTHON = {"min_dr": python_min_dr, "chi2 HH": python_chi2}


def timed(func, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--python-events", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)

    print(f"{args.events} events per sample, best of {args.repeat} runs, OMP_NUM_THREADS="
          f"{os.environ.get('OMP_NUM_THREADS')}, numpy {np.__version__}, awkward {ak.__version__}")
    header = f"| {'pairer':<20} | {'sample':<10} | {'accepted':>8} | {'vectorised ev/s':>15} | {'python ev/s':>11} | {'ratio':>6} |"
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    slow = []
    for n_jets in (4, 5, 6):
        for tag_label, p_tag in (("tagged", 1.0), ("mix", 0.8)):
            jets = make_jets(args.events, n_jets, p_tag, args.seed + n_jets)
            sample = f"{n_jets}j {tag_label}"
            py_events = ak.to_list(jets[: args.python_events])
            for label, plugin, options, min_jets in PAIRERS:
                if n_jets < min_jets:
                    continue
                pairer = get_pairer(plugin, **options)
                result = pairer(jets)  # warm-up, and the acceptance
                rate = args.events / timed(lambda: pairer(jets), args.repeat)  # noqa: B023 (called here)
                py_rate = ratio = ""
                if label in PYTHON:
                    py_time = timed(lambda: PYTHON[label](py_events), 1)  # noqa: B023 (called here)
                    py_rate_value = len(py_events) / py_time
                    py_rate, ratio = f"{py_rate_value:,.0f}", f"{rate / py_rate_value:,.0f}x"
                    # the per-event version must agree with the vectorised one
                    codes = PYTHON[label](py_events[:2000])
                    sub = get_pairer(plugin, **options)(jets[:2000])
                    first = sub.higgs_jet_indices[:, 0, 1]  # j0's partner position identifies the code
                    tagged = [[i for i, j in enumerate(ev) if j["btag"]] for ev in py_events[:2000]]
                    for i, code in enumerate(codes):
                        if code is None:
                            assert not sub.accepted[i]
                        elif label == "min_dr":
                            assert first[i] == tagged[i][CODES[code][0][1]], i
                print(f"| {label:<20} | {sample:<10} | {result.accepted.mean():>8.3f} | {rate:>15,.0f} | {py_rate:>11} | {ratio:>6} |")
                if plugin != "chi2" or options.get("n_higgs", 2) == 2 and not options.get("exhaustive"):
                    if rate < HH_TARGET:
                        slow.append((label, sample, rate))
    if slow:
        print("below the 1e6 events/s target:", ", ".join(f"{name} on {s} ({r:,.0f}/s)" for name, s, r in slow))
        return 1
    print("every HH pairer >= 1,000,000 events/s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
