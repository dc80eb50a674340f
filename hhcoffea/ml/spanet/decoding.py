"""Decode SPA-Net assignment distributions into non-overlapping jet pairs, as SPANet does.

Greedy, over all particles at once: take the highest cell of all the particles' N x N
distributions, give its two jets to that particle, remove that particle and those two jets
(their rows and columns in every distribution), repeat. Ties go to the first particle, then to
the first cell in row-major order (``argmax`` over the flattened ``(particle, row, column)``
array, which is SPANet's ``extract_prediction`` order). Diagonal cells and padded jets are never
chosen. Vectorised over events: one pass per particle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["decode_assignments"]


def decode_assignments(assignments, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Jet pairs ``(n, n_particles, 2)`` (ascending within a pair, -1 where none) and the value
    of each chosen cell ``(n, n_particles)`` (NaN where none).

    assignments: a list of ``(n, N, N)`` arrays (one per particle, e.g. the ONNX outputs
    ``h1_assignment_probability``...) or one ``(n, n_particles, N, N)`` array; probabilities or
    log-probabilities (only the order matters). mask: bool ``(n, N)``, True for real jets.
    """
    scores = np.stack(assignments, axis=1) if isinstance(assignments, (list, tuple)) else np.asarray(assignments)
    scores = np.array(scores, dtype=np.float64)  # a copy: cells are overwritten below
    n, n_particles, n_jets, _ = scores.shape
    scores[~np.isfinite(scores)] = -np.inf
    scores[:, :, np.arange(n_jets), np.arange(n_jets)] = -np.inf
    if mask is not None:
        real = np.asarray(mask, dtype=bool)
        np.copyto(scores, -np.inf, where=~(real[:, None, :, None] & real[:, None, None, :]))
    pairs = np.full((n, n_particles, 2), -1, dtype=np.int64)
    values = np.full((n, n_particles), np.nan)
    flat = scores.reshape(n, n_particles * n_jets * n_jets)
    rows = np.arange(n)
    cells = n_jets * n_jets
    for _ in range(n_particles):
        best = np.argmax(flat, axis=1)  # first maximum: lower particle, then row-major cell
        value = flat[rows, best]
        ok = value > -np.inf
        if not ok.any():
            break
        ev = rows[ok]
        particle, cell = np.divmod(best[ok], cells)
        first, second = np.divmod(cell, n_jets)
        pairs[ev, particle, 0] = np.minimum(first, second)
        pairs[ev, particle, 1] = np.maximum(first, second)
        values[ev, particle] = value[ok]
        scores[ev, particle] = -np.inf
        for jet in (first, second):
            scores[ev, :, jet, :] = -np.inf
            scores[ev, :, :, jet] = -np.inf
    return pairs, values
