"""Writing a sample: the NanoAOD-like ROOT file (FORMATS.md layout 2) and its JSON sidecar.

The sidecar ``<file>.json`` holds the dataset metadata: ``process``, ``xsec_fb`` (sigma x BR into
the generated final state at 13 TeV, ``xsec.sample_xsec_fb``: sigma_NNLO(kappa_lambda) x BR for
non-resonant samples), ``xsec_source`` (where that number comes from), ``n_generated``, ``m_x``,
``kappa_lambda``, ``working_point`` (the sample's own b-tagging working point: bit 0 of
``Jet_btag``), ``btag_bits`` (the bit of every other working point it wrote), ``seed``, ``chunk_size``, ``branching_ratio`` (BR(hh -> 4b)
for nonresonant, else null), ``sqrt_s`` in GeV (13000.0) and ``tree`` = "Events". Files are
written with LZ4 compression (ZLIB would cap the rate at ~30k events/s); reading them needs the
``lz4`` and ``xxhash`` modules, as any LZ4 ROOT file does. ``shower`` is null for the fast
emulation or ``"pythia"`` for showered samples (``generator`` then names the Pythia and FastJet
versions).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import uproot

from .. import constants as C
from .chunks import check_arguments, default_chunk_size, iter_chunks
from .xsec import SQRT_S, XSEC_SOURCE, sample_xsec_fb

__all__ = ["EMULATION_VERSION", "TREE_NAME", "btag_bits", "generate"]


def btag_bits() -> dict[str, int]:
    """Working point -> the ``Jet_btag`` bit the emulation writes for it (besides bit 0)."""
    from ..corrections.btagging.working_points import emulation_bits

    return emulation_bits()

TREE_NAME = "Events"
# bumped whenever the same seed gives different events (a recalibration); the sidecar records it,
# so a job remakes samples written by an older emulation
EMULATION_VERSION = 3


def _compression():
    """LZ4 (ROOT-readable; ~10x faster to write than ZLIB, which would cap the generator at
    ~30k events/s); ZLIB(1) if the lz4/xxhash modules are missing."""
    try:
        import lz4.frame  # noqa: F401
        import xxhash  # noqa: F401
    except ImportError:
        return uproot.ZLIB(1)
    return uproot.LZ4(1)


@contextlib.contextmanager
def _progress(show: bool, total: int, path):
    """A rich progress bar of events written (a no-op when ``show`` is false)."""
    if not show:
        yield lambda k: None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    with Progress(TextColumn(f"generating {Path(path).name}"), BarColumn(), MofNCompleteColumn(),
                  TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("events", total=int(total))
        yield lambda k: bar.advance(task, k)


def generate(
    process: str,
    n_events: int,
    path,
    *,
    seed: int = 0,
    m_x: float | None = None,
    kappa_lambda: float | None = None,
    working_point: str | None = None,
    chunk_size: int | None = None,
    shower: str | None = None,
    workers: int = 1,
    progress: bool = False,
) -> dict:
    """Write ``n_events`` emulated events of ``process`` to ``path`` (tree ``Events``, FORMATS.md
    layout 2) and ``<path>.json``; return the metadata dict written there (see the module docstring).

    ``shower="pythia"`` showers the same hard process with Pythia 8 instead of the fast
    emulation (``hhcoffea.emulation.shower``; ~80 events/s per worker); ``workers`` runs chunks
    on a process pool (same events); ``progress`` shows a progress bar of events written."""
    chunk_size = default_chunk_size(shower) if chunk_size is None else chunk_size
    m_x_c, kappa_c, wp = check_arguments(process, n_events, m_x, kappa_lambda, working_point, chunk_size, seed, shower)
    if shower is not None:
        from .shower import _require, version

        _require()  # before any file is touched
    xsec = float(sample_xsec_fb(process, m_x_c, kappa_c))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = iter_chunks(process, n_events, seed=seed, m_x=m_x, kappa_lambda=kappa_lambda,
                         working_point=working_point, chunk_size=chunk_size, shower=shower, workers=workers)
    with uproot.recreate(path, compression=_compression()) as fout, _progress(progress, n_events, path) as advance:
        tree = None
        for chunk in chunks:
            if tree is None:
                tree = fout.mktree(TREE_NAME, chunk, title="hhcoffea emulated events")
            else:
                tree.extend(chunk)
            advance(len(chunk["genWeight"]))
    meta = {
        "process": process,
        "file": str(path),
        "tree": TREE_NAME,
        "n_generated": int(n_events),
        "xsec_fb": xsec,
        "xsec_source": XSEC_SOURCE[process],
        "m_x": m_x_c,
        "kappa_lambda": kappa_c,
        "working_point": wp,
        "btag_bits": btag_bits(),  # Jet_btag bit per working point (bit 0: working_point)
        "seed": int(seed),
        "sqrt_s": SQRT_S,
        "chunk_size": int(chunk_size),
        "branching_ratio": C.BR_HH_4B if process == "nonresonant" else None,
        "shower": shower,
        "emulation_version": EMULATION_VERSION,
        "generator": (f"hhcoffea.emulation hard process + {version()} + Delphes-like resolution and b-tagging"
                      if shower else "hhcoffea.emulation (parametric emulation, not a Monte Carlo generator)"),
    }
    Path(str(path) + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
