"""Truth tagging: weight each event by the probability that at least N of its jets are tagged, and
draw which jets count as tagged, with no per-event Python.

Jets are given as padded ``(n_events, n_jets)`` arrays of tag probabilities p = SF·ε (0 in the
padding). :func:`probability_at_least` is a Poisson-binomial recursion over the jet columns,
vectorised over events. :func:`draw_tagged` draws one tag configuration per event with
probability proportional to its weight among the configurations with at least N tags (sequential
conditional sampling from the same recursion run backwards). Its uniforms come from
:func:`event_uniforms`, a counter-based hash of (file, entry in the file, jet position, seed):
the same event gets the same draw whatever the chunking, executor or worker.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["probability_at_least", "draw_tagged", "event_uniforms", "file_key", "padded"]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def padded(values: np.ndarray, counts: np.ndarray, fill=0.0) -> np.ndarray:
    """Flat per-jet values (events consecutive) as an ``(n_events, max(counts))`` block."""
    n, width = len(counts), int(counts.max()) if len(counts) else 0
    out = np.full((n, width), fill, dtype=np.asarray(values).dtype)
    if n and width:
        starts = np.cumsum(counts) - counts
        local = np.arange(int(counts.sum())) - np.repeat(starts, counts)
        out[np.repeat(np.arange(n), counts), local] = values
    return out


def probability_at_least(p: np.ndarray, n_required: int) -> np.ndarray:
    """P(at least ``n_required`` of each row's jets are tagged), jets independent with
    probabilities ``p`` ``(n_events, n_jets)``."""
    n = p.shape[0]
    dist = np.zeros((n, n_required + 1))
    dist[:, 0] = 1.0
    for j in range(p.shape[1]):
        pj = p[:, j : j + 1]
        moved = dist * pj
        dist = dist * (1.0 - pj)
        dist[:, 1:] += moved[:, :-1]
        dist[:, n_required] += moved[:, n_required]  # "at least": the last state absorbs
    return dist[:, n_required]


def draw_tagged(p: np.ndarray, u: np.ndarray, n_required: int) -> np.ndarray:
    """One configuration per event among those with at least ``n_required`` tags, with
    probability proportional to Π p (tagged) Π (1 - p) (untagged). ``u``: uniforms, same shape.

    ``reach[j][:, k]`` is P(at least n_required tags in the end | k so far, jets j.. to come); jet
    j is tagged with probability p_j reach[j+1][k+1] / reach[j][k]. Rows with no such
    configuration (probability 0) come back untagged.
    """
    n, m = p.shape
    k_max = n_required
    reach = np.zeros((m + 1, n, k_max + 1))
    reach[m][:, k_max] = 1.0
    for j in range(m - 1, -1, -1):
        pj = p[:, j : j + 1]
        after = reach[j + 1]
        up = np.concatenate([after[:, 1:], after[:, k_max:]], axis=1)  # state k + 1, capped
        reach[j] = pj * up + (1.0 - pj) * after
    tagged = np.zeros((n, m), dtype=bool)
    state = np.zeros(n, dtype=np.int64)
    rows = np.arange(n)
    for j in range(m):
        here = reach[j][rows, state]
        there = reach[j + 1][rows, np.minimum(state + 1, k_max)]
        with np.errstate(invalid="ignore", divide="ignore"):
            prob = np.where(here > 0, p[:, j] * there / here, 0.0)
        tagged[:, j] = u[:, j] < prob
        state = np.minimum(state + tagged[:, j], k_max)
    return tagged


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (uint64 arithmetic wraps)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def file_key(metadata: dict) -> int:
    """A stable 32-bit key of the chunk's file (its ROOT uuid if known, else its file name)."""
    ident = metadata.get("fileuuid") or str(metadata.get("filename", "")).rsplit("/", 1)[-1]
    if isinstance(ident, (bytes, bytearray)):
        return zlib.crc32(bytes(ident))
    return zlib.crc32(str(ident).encode())


def event_uniforms(key: int, entries: np.ndarray, width: int, seed: int = 0) -> np.ndarray:
    """Uniforms in [0, 1) of shape ``(len(entries), width)`` from (file key, entry number in the
    file, jet position, seed) alone: independent of how the file was split into chunks."""
    entries = np.asarray(entries, dtype=np.uint64)
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(key) * _GOLDEN ^ _mix(np.uint64(seed & 0xFFFFFFFFFFFFFFFF) + _GOLDEN))
        event = _mix(base ^ (entries * _GOLDEN))
        jets = np.arange(width, dtype=np.uint64)
        bits = _mix(event[:, None] + (jets[None, :] + np.uint64(1)) * _GOLDEN)
    return (bits >> np.uint64(11)).astype(np.float64) * (1.0 / 2**53)
