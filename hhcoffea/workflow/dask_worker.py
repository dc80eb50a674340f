"""What a dask worker needs to process chunks as cheaply as a futures worker.

A futures worker is forked from the run's process: it inherits the imported modules, glibc's
default allocator settings and the frozen long-lived objects. A dask worker is a fresh process
started by a nanny, which sets ``MALLOC_TRIM_THRESHOLD_`` for it. :class:`ChunkWorkerSetup` (a
worker plugin, registered by :func:`hhcoffea.workflow.executors.dask_client` for every run)
gives each worker the same state before its first chunk; ``benchmarks/scale.py`` measures the
difference (CPU per process).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import importlib

from distributed.diagnostics.plugin import WorkerPlugin

from .executors import CHUNK_MODULES

__all__ = ["CHUNK_MODULES", "ChunkWorkerSetup", "heap_for_large_arrays"]


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def heap_for_large_arrays(mmap_threshold: int = 32 << 20) -> bool:
    """Serve blocks below ``mmap_threshold`` bytes from the reused heap; False where that is not glibc.

    glibc raises its mmap threshold by itself as large blocks are freed, unless a threshold was set:
    the nanny's ``MALLOC_TRIM_THRESHOLD_`` turns that off and leaves it at 128 kB, so every jet
    array of a chunk is a fresh mmap whose pages the kernel faults in and zeroes (system time).
    These are the values glibc's own adjustment ends at (trim at twice the mmap threshold).
    """
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):  # no C library by that name, or no mallopt in it
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(mallopt(_M_TRIM_THRESHOLD, 2 * mmap_threshold))


class ChunkWorkerSetup(WorkerPlugin):
    """Worker plugin: glibc's heap for large arrays, the chunk's modules imported, and the
    long-lived objects frozen, so the processor's per-chunk collection
    (:func:`hhcoffea.events.release_chunk_garbage`) runs and is cheap, as in a forked futures worker.

    ``teardown`` (when the run unregisters it from a cluster it did not start) unfreezes.
    """

    name = "hhcoffea-chunk-worker"

    def setup(self, worker) -> None:
        worker.hhcoffea_heap_for_large_arrays = heap_for_large_arrays()
        for module in CHUNK_MODULES:
            importlib.import_module(module)
        gc.collect()
        gc.freeze()

    def teardown(self, worker) -> None:
        gc.unfreeze()
