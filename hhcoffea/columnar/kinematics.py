"""Columnar four-vector arithmetic on plain numpy arrays (any shape, broadcasting).

The hot paths (pairing, selection) work on regular ``(n_events, n_jets)`` arrays; these are the
few formulas they share. ``delta_phi`` is wrapped into [-pi, pi] (PHYSICS.md, units).
"""

from __future__ import annotations

import numpy as np

__all__ = ["delta_phi", "delta_r", "from_cartesian", "invariant_mass", "to_cartesian"]



def delta_phi(phi1, phi2):
    """phi1 - phi2 wrapped into [-pi, pi]."""
    return (np.asarray(phi1) - np.asarray(phi2) + np.pi) % (2.0 * np.pi) - np.pi


def delta_r(eta1, phi1, eta2, phi2):
    """sqrt(deta^2 + dphi^2)."""
    return np.hypot(np.asarray(eta1) - np.asarray(eta2), delta_phi(phi1, phi2))


def to_cartesian(pt, eta, phi, mass):
    """(pt, eta, phi, m) -> (px, py, pz, E), float64."""
    pt = np.asarray(pt, dtype=np.float64)
    eta = np.asarray(eta, dtype=np.float64)
    phi = np.asarray(phi, dtype=np.float64)
    mass = np.asarray(mass, dtype=np.float64)
    px = pt * np.cos(phi)
    py = pt * np.sin(phi)
    pz = pt * np.sinh(eta)
    energy = np.sqrt(px * px + py * py + pz * pz + mass * mass)
    return px, py, pz, energy


def from_cartesian(px, py, pz, energy):
    """(px, py, pz, E) -> (pt, eta, phi, m); m is clipped at 0 for rounding."""
    pt = np.hypot(px, py)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta = np.arcsinh(np.where(pt > 0, pz / np.where(pt > 0, pt, 1.0), 0.0))
    phi = np.arctan2(py, px)
    m2 = energy * energy - (px * px + py * py + pz * pz)
    mass = np.sqrt(np.clip(m2, 0.0, None))
    return pt, eta, phi, mass


def invariant_mass(px, py, pz, energy):
    """Mass of a four-vector given by components (clipped at 0)."""
    m2 = energy * energy - (px * px + py * py + pz * pz)
    return np.sqrt(np.clip(m2, 0.0, None))
