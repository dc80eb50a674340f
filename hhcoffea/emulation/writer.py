"""Writing a sample: the NanoAOD-like ROOT file (FORMATS.md layout 2) and its JSON sidecar.

The sidecar ``<file>.json`` holds the dataset metadata: ``process``, ``xsec_fb`` (sigma x BR into
the generated final state at 13 TeV, ``xsec.sample_xsec_fb``: sigma_NNLO(kappa_lambda) x BR for
non-resonant samples), ``xsec_source`` (where that number comes from), ``n_generated``, ``m_x``,
``kappa_lambda``, ``working_point``, ``seed``, ``chunk_size``, ``branching_ratio`` (BR(hh -> 4b)
for nonresonant, else null), ``sqrt_s`` in GeV (13000.0) and ``tree`` = "Events". Files are
written with LZ4 compression (ZLIB would cap the rate at ~30k events/s); reading them needs the
``lz4`` and ``xxhash`` modules, as any LZ4 ROOT file does.
"""

from __future__ import annotations

import json
from pathlib import Path

import uproot

from .. import constants as C
from .chunks import check_arguments, iter_chunks
from .xsec import SQRT_S, XSEC_SOURCE, sample_xsec_fb

__all__ = ["TREE_NAME", "btag_bits", "generate"]


def btag_bits() -> dict[str, int]:
    """Working point -> the ``Jet_btag`` bit the emulation writes for it (besides bit 0)."""
    from ..corrections.btagging.working_points import emulation_bits

    return emulation_bits()

TREE_NAME = "Events"


def _compression():
    """LZ4 (ROOT-readable; ~10x faster to write than ZLIB, which would cap the generator at
    ~30k events/s); ZLIB(1) if the lz4/xxhash modules are missing."""
    try:
        import lz4.frame  # noqa: F401
        import xxhash  # noqa: F401
    except ImportError:
        return uproot.ZLIB(1)
    return uproot.LZ4(1)


def generate(
    process: str,
    n_events: int,
    path,
    *,
    seed: int = 0,
    m_x: float | None = None,
    kappa_lambda: float | None = None,
    working_point: str | None = None,
    chunk_size: int = 200_000,
) -> dict:
    """Write ``n_events`` emulated events of ``process`` to ``path`` (tree ``Events``, FORMATS.md
    layout 2) and ``<path>.json``; return the metadata dict written there (see the module docstring)."""
    m_x_c, kappa_c, wp = check_arguments(process, n_events, m_x, kappa_lambda, working_point, chunk_size, seed)
    xsec = float(sample_xsec_fb(process, m_x_c, kappa_c))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    chunks = iter_chunks(process, n_events, seed=seed, m_x=m_x, kappa_lambda=kappa_lambda,
                         working_point=working_point, chunk_size=chunk_size)
    with uproot.recreate(path, compression=_compression()) as fout:
        tree = None
        for chunk in chunks:
            if tree is None:
                tree = fout.mktree(TREE_NAME, chunk, title="hhcoffea emulated events")
            else:
                tree.extend(chunk)
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
        "generator": "hhcoffea.emulation (parametric emulation, not a Monte Carlo generator)",
    }
    Path(str(path) + ".json").write_text(json.dumps(meta, indent=2) + "\n")
    return meta
