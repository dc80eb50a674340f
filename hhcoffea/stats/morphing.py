"""Non-resonant signal at any kappa_lambda from exactly three basis samples.

The LO ggF amplitude is linear in kappa_lambda (A = A_box + kappa_lambda * A_triangle), so
sigma x shape in every bin is a quadratic polynomial in kappa_lambda (PHYSICS.md, Statistics).
Three samples at kappa_1, kappa_2, kappa_3 fix that polynomial, and

    template(k) = sum_i c_i(k) * basis_i,   c(k) = [1, k, k^2] @ inverse(V),   V_ij = kappa_i ** j,

i.e. the c_i are the Lagrange polynomials of the basis points (the "quadratic-coefficient
inversion"). Cross sections morph with the same coefficients. The sum of squared weights of a
combined template is sum_i c_i^2 sumw2_i (independent basis samples); systematic variations are
combined with the same c_i.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .workspace import Template

__all__ = ["basis_coefficients", "morph_template", "morph_values"]


def basis_coefficients(basis_kappas: Sequence[float], kappa: float | np.ndarray) -> np.ndarray:
    """Coefficients c_i(kappa) of the three basis samples; shape ``(3,)`` or ``(n, 3)``.

    Raises:
        ValueError: unless there are exactly three distinct basis points.
    """
    k = np.asarray(basis_kappas, dtype=float)
    if k.shape != (3,) or len(set(k.tolist())) != 3:
        raise ValueError(f"need exactly three distinct basis kappa_lambda values, got {list(k)}")
    V = np.vander(k, 3, increasing=True)  # rows [1, k_i, k_i^2]
    Vinv = np.linalg.inv(V)
    kap = np.asarray(kappa, dtype=float)
    powers = np.stack([np.ones_like(kap), kap, kap**2], axis=-1)
    return powers @ Vinv


def morph_values(basis_kappas: Sequence[float], basis_values: Sequence[float], kappa) -> np.ndarray:
    """Morph per-sample numbers (e.g. cross sections) to ``kappa``: sum_i c_i(kappa) value_i."""
    return basis_coefficients(basis_kappas, kappa) @ np.asarray(basis_values, dtype=float)


def morph_template(
    basis_kappas: Sequence[float],
    basis: Sequence[Template],
    kappa: float,
    *,
    clip: bool = False,
    coefficients: Callable[[Sequence[float], float], np.ndarray] | None = None,
) -> Template:
    """The signal template at ``kappa`` combined from three basis templates.

    With ``clip``, negative combined yields (statistical noise in nearly empty bins) are set to 0 so
    that the template can enter a likelihood. ``coefficients(basis_kappas, kappa)`` replaces the
    Lagrange coefficients when the samples are not plain quadratics in kappa (e.g. emulated shapes
    normalised to sigma_NNLO: ``hhcoffea.emulation.xsec.nonresonant_morphing_coefficients``).
    """
    if len(basis) != 3:
        raise ValueError(f"need exactly three basis templates, got {len(basis)}")
    c = (coefficients or basis_coefficients)(basis_kappas, kappa)
    yields = sum(ci * t.yields for ci, t in zip(c, basis))
    sumw2 = sum(ci**2 * t.sumw2 for ci, t in zip(c, basis))
    names = set(basis[0].variations)
    for t in basis[1:]:
        names &= set(t.variations)
    variations = {
        n: (
            sum(ci * t.variations[n][0] for ci, t in zip(c, basis)),
            sum(ci * t.variations[n][1] for ci, t in zip(c, basis)),
        )
        for n in sorted(names)
    }
    yields = np.asarray(yields, dtype=float)
    if clip:
        yields = np.maximum(yields, 0.0)
        variations = {n: (np.maximum(u, 0.0), np.maximum(d, 0.0)) for n, (u, d) in variations.items()}
    return Template(yields, np.asarray(sumw2, dtype=float), variations)
