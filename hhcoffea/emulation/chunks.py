"""The event pipeline: argument checks, one random stream per chunk, hard process -> detector
(the fast emulation, ``detector.simulate``) or -> parton shower (``shower.shower``).

Determinism: each chunk has its own ``np.random.default_rng`` seeded from (seed, process,
m_x, kappa_lambda, chunk index), so a given (seed, parameters, chunk_size, shower) always gives
byte-identical arrays, whether the chunks run in one process or on ``workers`` processes;
different seeds (or masses, kappas) give independent samples.
"""

from __future__ import annotations

import math
from concurrent.futures import ProcessPoolExecutor

import awkward as ak
import numpy as np

from .. import constants as C
from .detector import simulate
from .processes import HARD_PROCESSES, PROCESSES

__all__ = ["CHUNK_SIZE", "SHOWER_CHUNK_SIZE", "check_arguments", "default_chunk_size", "generate_arrays", "iter_chunks"]

CHUNK_SIZE = 200_000  # fast emulation: events per chunk
SHOWER_CHUNK_SIZE = 500  # showered: ~6 s of Pythia per chunk, so the progress bar moves


def check_arguments(process, n_events, m_x, kappa_lambda, working_point, chunk_size, seed=0, shower=None):
    """Validated ``(m_x, kappa_lambda, working_point)`` with defaults filled in; a one-line
    ValueError naming the argument otherwise."""
    if shower is not None and shower not in ("pythia",):
        raise ValueError(f"unknown shower {shower!r}; choose 'pythia' or none (the fast emulation)")
    if process not in PROCESSES:
        raise ValueError(f"unknown process {process!r}; choose one of {', '.join(PROCESSES)}")
    if isinstance(n_events, bool) or not isinstance(n_events, (int, np.integer)) or n_events < 1:
        raise ValueError(f"n_events must be a positive integer, got {n_events!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if process == "resonant":
        if m_x is None:
            raise ValueError("process 'resonant' needs m_x (the X mass in GeV, e.g. --m-x 500)")
        m_x = float(m_x)
        if not (2 * C.HIGGS_MASS + 1.0 < m_x <= 6000.0):
            raise ValueError(f"m_x must lie in ({2 * C.HIGGS_MASS + 1.0:g}, 6000] GeV, got {m_x:g}")
    elif m_x is not None:
        raise ValueError(f"m_x only applies to process 'resonant', not {process!r}")
    if process == "nonresonant":
        kappa_lambda = 1.0 if kappa_lambda is None else float(kappa_lambda)
        if not math.isfinite(kappa_lambda):
            raise ValueError(f"kappa_lambda must be finite, got {kappa_lambda!r}")
    elif kappa_lambda is not None:
        raise ValueError(f"kappa_lambda only applies to process 'nonresonant', not {process!r}")
    if working_point is None:
        working_point = C.NONRESONANT_WORKING_POINT if process == "nonresonant" else C.RESONANT_WORKING_POINT
    if working_point not in C.BTAG_WORKING_POINTS:
        raise ValueError(
            f"unknown b-tagging working point {working_point!r}; known: {', '.join(C.BTAG_WORKING_POINTS)}"
        )
    return m_x, kappa_lambda, working_point


def _chunk_rng(seed, process, m_x, kappa_lambda, index):
    # one independent stream per chunk: the same (seed, parameters, chunk_size) -> the same events
    param_bits = [int(np.float64(v).view(np.uint64)) if v is not None else 0 for v in (m_x, kappa_lambda)]
    entropy = [int(seed) & 0xFFFFFFFFFFFFFFFF, PROCESSES.index(process), *param_bits, index]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _chunk(task):
    """One chunk's events (top level, so that a process pool can run it)."""
    process, n, seed, m_x, kappa_lambda, working_point, index, shower = task
    rng = _chunk_rng(seed, process, m_x, kappa_lambda, index)
    hard = HARD_PROCESSES[process](rng, n, m_x, kappa_lambda)
    if shower is None:
        return simulate(rng, hard, working_point)
    from .shower import SPARE_EVENTS
    from .shower import shower as run_shower

    spare = HARD_PROCESSES[process](rng, max(int(SPARE_EVENTS[0] * n), SPARE_EVENTS[1]), m_x, kappa_lambda)
    return run_shower(rng, hard, process, working_point, m_x=m_x, spare=spare)


def default_chunk_size(shower=None) -> int:
    """Events per chunk when none is given: ``CHUNK_SIZE``, or ``SHOWER_CHUNK_SIZE`` showered."""
    return CHUNK_SIZE if shower is None else SHOWER_CHUNK_SIZE


def iter_chunks(process, n_events, *, seed=0, m_x=None, kappa_lambda=None, working_point=None, chunk_size=None,
                shower=None, workers=1):
    """Yield the event content chunk by chunk, in order (dicts of awkward/numpy arrays as written).

    ``shower``: None (fast emulation) or ``"pythia"``; ``workers`` > 1 runs the chunks on a
    process pool (a few chunks ahead of the one yielded), with the same events."""
    chunk_size = default_chunk_size(shower) if chunk_size is None else chunk_size
    m_x, kappa_lambda, working_point = check_arguments(process, n_events, m_x, kappa_lambda, working_point,
                                                       chunk_size, seed, shower)
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    tasks = [
        (process, min(int(chunk_size), int(n_events) - start), seed, m_x, kappa_lambda, working_point, index, shower)
        for index, start in enumerate(range(0, int(n_events), int(chunk_size)))
    ]
    if workers == 1 or len(tasks) == 1:
        for task in tasks:
            yield _chunk(task)
        return
    with ProcessPoolExecutor(max_workers=int(workers)) as pool:
        ahead = 2 * int(workers)  # bounded: results wait in memory only a few chunks
        pending = [pool.submit(_chunk, t) for t in tasks[:ahead]]
        for i in range(len(tasks)):
            result = pending[i].result()
            pending[i] = None
            if i + ahead < len(tasks):
                pending.append(pool.submit(_chunk, tasks[i + ahead]))
            yield result


def generate_arrays(process, n_events, *, seed=0, m_x=None, kappa_lambda=None, working_point=None, chunk_size=None,
                    shower=None, workers=1):
    """The same events ``generate`` writes, in memory: a dict of awkward arrays
    (``Jet``, ``GenPart``, ``Electron``, ``Muon`` jagged records) and numpy arrays (``MET_pt``,
    ``MET_phi``, ``genWeight``)."""
    chunks = list(
        iter_chunks(process, n_events, seed=seed, m_x=m_x, kappa_lambda=kappa_lambda,
                    working_point=working_point, chunk_size=chunk_size, shower=shower, workers=workers)
    )
    out = {}
    for key, first in chunks[0].items():
        parts = [c[key] for c in chunks]
        if isinstance(first, ak.Array):
            out[key] = parts[0] if len(parts) == 1 else ak.concatenate(parts)
        else:
            out[key] = np.concatenate(parts)
    return out
