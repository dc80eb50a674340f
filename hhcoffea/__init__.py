"""hhcoffea: a plugin-based coffea framework for HH->4b (and HHH->6b) searches.

The public API, by concept (each name is imported from its home module on first use, so
``import hhcoffea`` stays cheap and a worker imports only what it touches)::

    events     EventModel, event_model, AutoSchema, inspect_file, events_from_arrays, InputError
    pairing    Pairer, PairingResult, get_pairer
    scoring    Scorer, get_scorer
    histograms book
    emulation  generate
    stats      upper_limit, run_statistics
    workflow   load_job, run_job, write_outputs, load_histogram

>>> import hhcoffea
>>> hhcoffea.get_pairer("min_dr").name
'min_dr'
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

#: public name -> module it lives in
_HOME = {
    "AutoSchema": "hhcoffea.events",
    "EventModel": "hhcoffea.events",
    "InputError": "hhcoffea.events",
    "event_model": "hhcoffea.events",
    "events_from_arrays": "hhcoffea.events",
    "inspect_file": "hhcoffea.events",
    "Pairer": "hhcoffea.pairing",
    "PairingResult": "hhcoffea.pairing",
    "get_pairer": "hhcoffea.pairing",
    "Scorer": "hhcoffea.scoring",
    "get_scorer": "hhcoffea.scoring",
    "book": "hhcoffea.histograms",
    "generate": "hhcoffea.emulation",
    "upper_limit": "hhcoffea.stats.limits",
    "run_statistics": "hhcoffea.stats.analysis",
    "load_job": "hhcoffea.workflow.job",
    "run_job": "hhcoffea.workflow.runner",
    "write_outputs": "hhcoffea.workflow.output",
    "load_histogram": "hhcoffea.workflow.output",
}

__all__ = ["__version__", *sorted(_HOME)]


def __getattr__(name: str):
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'hhcoffea' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
