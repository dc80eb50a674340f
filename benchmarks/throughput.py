"""Throughput of the full chain through coffea (read, select, pair, fill) beside a raw uproot
read of the same branches, in the same run, printed as a ratio.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py [--events 1000000] [--pairers min_dr]

Target (issue "The spine"): the chain at least half as fast as the raw read (ratio >= 0.5).
Target (b-tagging issue): the chain with method-1a b-tag weights and their btag_bc/btag_light
variations at least 0.8 of the chain without them (LZ4 files).
The sample is half resonant signal (m_X = 500) and half QCD multi-b, made by ``hhcoffea.emulation``.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import uproot
from coffea import processor

from hhcoffea.emulation import generate
from hhcoffea.events import AutoSchema
from hhcoffea.pairing import get_pairer
from hhcoffea.processors.hh4b import HH4bProcessor


def chain(fileset, pairers, chunksize, **options):
    proc = HH4bProcessor(pairers={p: get_pairer(p) for p in pairers}, **options)
    runner = processor.Runner(
        executor=processor.IterativeExecutor(status=False),
        schema=AutoSchema,
        chunksize=chunksize,
        savemetrics=True,
    )
    start = time.perf_counter()
    out, metrics = runner(fileset, proc)
    return time.perf_counter() - start, out, metrics


def raw_read(files, branches, chunksize):
    start = time.perf_counter()
    n = 0
    for arrays in uproot.iterate([{f: "Events"} for f in files], filter_name=branches, step_size=chunksize, library="ak"):
        n += len(arrays)
    return time.perf_counter() - start, n


def recompress(src: str, dst: str, compression) -> str:
    """Rewrite a NanoAOD-like file with another compression (same branches, same TTree)."""
    import awkward as ak

    tree = uproot.open(src)["Events"]
    arrays = tree.arrays([k for k in tree.keys() if not k.startswith("n")])
    collections: dict = {}
    flat = {}
    for name in arrays.fields:
        prefix, _, field = name.partition("_")
        if arrays[name].ndim > 1:
            collections.setdefault(prefix, {})[field] = arrays[name]
        else:
            flat[name] = arrays[name]
    with uproot.recreate(dst, compression=compression) as f:
        f.mktree("Events", {**{c: ak.zip(v) for c, v in collections.items()}, **flat})
    return dst


def measure(fileset, files, pairers, chunksize, repeat):
    # warm the page cache and learn which branches the chain reads
    _, _, metrics = chain(fileset, pairers, chunksize)
    branches = sorted({c.rsplit("-", 1)[0] for c in metrics["columns"]})
    raw_read(files, branches, chunksize)
    # best of `repeat` runs each, interleaved, so both see the same machine state
    t_raw = t_chain = float("inf")
    for _ in range(repeat):
        t, n_raw = raw_read(files, branches, chunksize)
        t_raw = min(t_raw, t)
        t, out, _ = chain(fileset, pairers, chunksize)
        t_chain = min(t_chain, t)
    n_chain = sum(out["events_in"].values())
    assert n_raw == n_chain
    return branches, n_chain / t_raw, n_chain / t_chain


def btag_weighted_options(fileset, chunksize, workdir):
    """Processor options for method-1a b-tag weights with the btag_bc/btag_light variations filled
    into m_hh, from efficiency maps measured on the same files (through the Runner)."""
    from hhcoffea.corrections.btagging import load_working_points, parse_btagging
    from hhcoffea.corrections.btagging.maps import (
        DEFAULT_ABSETA_EDGES,
        DEFAULT_MIN_JETS,
        DEFAULT_PT_EDGES,
        efficiency_correction_set,
        write_efficiency_file,
    )
    from hhcoffea.corrections.btagging.measure import maps_from_counts
    from hhcoffea.processors.btag_efficiency import BTagEfficiencyProcessor

    table = load_working_points()
    unmeasured = parse_btagging({"working_point": "MV2c10_70"}, {}, load_corrections=False)
    proc = BTagEfficiencyProcessor(btagging=unmeasured, working_points={d: ["MV2c10_70"] for d in fileset}, table=table,
                                   abseta_edges=list(DEFAULT_ABSETA_EDGES), pt_edges=list(DEFAULT_PT_EDGES))
    runner = processor.Runner(executor=processor.IterativeExecutor(status=False), schema=AutoSchema, chunksize=chunksize)
    counts = runner(fileset, proc)["counts"]
    path = write_efficiency_file(efficiency_correction_set(maps_from_counts(counts, table, DEFAULT_MIN_JETS),
                                                           DEFAULT_ABSETA_EDGES, DEFAULT_PT_EDGES), Path(workdir) / "btag_eff.json")
    btagging = parse_btagging({"working_point": "MV2c10_70", "efficiency": str(path), "method": "weight"}, {})
    return {"btagging": btagging, "histogram_systematics": {"m_hh": ["btag_bc", "btag_light"]}}


def measure_btag(fileset, pairers, chunksize, repeat, options):
    """Best-of-``repeat`` events/s of the chain without and with b-tag weights and variations."""
    chain(fileset, pairers, chunksize, **options)  # warm caches (correctionlib, numba)
    t_plain = t_btag = float("inf")
    for _ in range(repeat):
        t, out, _ = chain(fileset, pairers, chunksize)
        t_plain = min(t_plain, t)
        t, _, _ = chain(fileset, pairers, chunksize, **options)
        t_btag = min(t_btag, t)
    n = sum(out["events_in"].values())
    return n / t_plain, n / t_btag


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="total events (half signal, half QCD)")
    parser.add_argument("--chunksize", type=int, default=200_000)
    parser.add_argument("--pairers", nargs="+", default=["min_dr"])
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--repeat", type=int, default=3, help="best of this many runs of each")
    args = parser.parse_args()

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="hhcoffea-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    half = args.events // 2
    samples = {
        "X500": generate("resonant", half, workdir / "X500.root", seed=1, m_x=500.0),
        "qcd": generate("qcd", half, workdir / "qcd.root", seed=2),
    }
    print(f"machine: {os.cpu_count()} cores, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"events: {2 * half:,} (half resonant m_X=500, half QCD), chunksize {args.chunksize:,}, best of {args.repeat}")
    for label, compression in (("LZ4 (as hhcoffea generate writes)", None), ("ZLIB level 1 (uproot's default)", uproot.ZLIB(1))):
        files = {}
        for name, meta in samples.items():
            path = meta["file"]
            if compression is not None:
                path = recompress(path, str(workdir / f"{name}.zlib.root"), compression)
            files[name] = path
        fileset = {
            name: {"files": {files[name]: "Events"}, "metadata": {k: meta[k] for k in ("process", "xsec_fb", "n_generated")}}
            for name, meta in samples.items()
        }
        branches, rate_raw, rate_chain = measure(fileset, list(files.values()), args.pairers, args.chunksize, args.repeat)
        print(f"-- input files: {label}")
        print(f"   branches read ({len(branches)}): {', '.join(branches)}")
        print(f"   raw uproot.iterate of the same branches: {rate_raw:,.0f} events/s")
        print(f"   hhcoffea chain (Runner, iterative; pairers {', '.join(args.pairers)}): {rate_chain:,.0f} events/s")
        print(f"   ratio chain / raw read: {rate_chain / rate_raw:.2f}  (target >= 0.5)")
        if compression is None:
            plain, weighted = measure_btag(fileset, args.pairers, args.chunksize, args.repeat,
                                           btag_weighted_options(fileset, args.chunksize, workdir))
            print(f"   chain without b-tag weights: {plain:,.0f} events/s; with method-1a weights and the "
                  f"btag_bc/btag_light variations on m_hh: {weighted:,.0f} events/s")
            print(f"   ratio with / without b-tag weights: {weighted / plain:.2f}  (target >= 0.8)")


if __name__ == "__main__":
    main()
