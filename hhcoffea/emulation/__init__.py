"""Sample emulation: NanoAOD-like ROOT files (FORMATS.md layout 2) for the HH->4b analysis.

**This is an emulation, not a Monte Carlo event generator.** It draws parton-level kinematics
from simple, documented densities and passes them through a Delphes-like detector
parametrisation, so that the analysis chain (pairings, selections, limits) has realistic-looking
input with known truth. Nothing here is a matrix-element calculation.

Modules, in the order an event goes through them:

``xsec``
    m_hh densities of non-resonant ggF hh (LO heavy-top amplitude) and every sample's cross
    section.
``processes``
    the hard processes (``resonant``, ``nonresonant``, ``qcd``, ``ttbar``): parton kinematics and
    truth.
``detector``
    ISR/FSR, jet merging, neutrino and out-of-cone losses, jet resolution, b-tagging, MET,
    leptons.
``chunks``
    argument checks and the per-chunk random streams (determinism).
``writer``
    the ROOT file and its JSON sidecar: :func:`generate`.
``calibration``
    four-tag efficiencies measured with this emulation and the cross sections tuned from them.

``hhcoffea generate`` is :mod:`hhcoffea.cli.generate`.

Importing the package is cheap: the names below are loaded from their modules on first use.
"""

from __future__ import annotations

import importlib

__all__ = ["PROCESSES", "generate", "generate_arrays", "iter_chunks"]

_HOME = {"PROCESSES": "processes", "generate": "writer", "generate_arrays": "chunks", "iter_chunks": "chunks"}


def __getattr__(name: str):
    # lazy: importing the package (e.g. for PROCESSES) must stay light
    if name in _HOME:
        return getattr(importlib.import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
