"""Throughput of the full chain through coffea (read, select, pair, fill) beside a raw uproot
read of the same branches, in the same run, printed as a ratio.

    OMP_NUM_THREADS=1 python benchmarks/throughput.py [--events 1000000] [--pairers min_dr]

Target (issue "The spine"): the chain at least half as fast as the raw read (ratio >= 0.5).
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

from hhcoffea.events import AutoSchema
from hhcoffea.emulation import generate
from hhcoffea.pairing import get_pairer
from hhcoffea.processors.hh4b import HH4bProcessor


def chain(fileset, pairers, chunksize):
    proc = HH4bProcessor(pairers={p: get_pairer(p) for p in pairers})
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


if __name__ == "__main__":
    main()
