"""Per-event b-tagging weights: scale factors by "method 1a" and truth-tag probabilities, with
their b+c (correlated) and light variations, booked in coffea's ``analysis_tools.Weights``.

Method 1a (CMS BTV): w = Π_tagged SF × Π_untagged (1 − SF·ε)/(1 − ε) over the selected jets,
ε from the efficiency maps. SF·ε is capped at 1 (a tagged jet then weighs SF·ε/ε).
"""

from __future__ import annotations

import numpy as np

from .truth_tag import draw_tagged, event_uniforms, padded, probability_at_least

__all__ = ["VARIATIONS", "per_event_product", "jet_factors", "method_1a_weights", "truth_tag_weights"]

#: the b-tagging variations (systematic-axis entries ``<name>_up`` / ``<name>_down``)
VARIATIONS = ("btag_bc", "btag_light")
_EFF_FLOOR = 1e-6


def per_event_product(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Π of consecutive runs of ``values`` (``counts`` per event; 1 for an empty event)."""
    out = np.ones(len(counts))
    nonempty = counts > 0
    if nonempty.any():
        starts = (np.cumsum(counts) - counts)[nonempty]
        out[nonempty] = np.multiply.reduceat(values, starts)
    return out


def jet_factors(tagged: np.ndarray, eff: np.ndarray, sf: np.ndarray) -> np.ndarray:
    """Method-1a factor of each jet: SF·ε/ε if tagged, (1 − SF·ε)/(1 − ε) if not."""
    p = np.clip(sf * eff, 0.0, 1.0)
    return np.where(tagged, p / eff, (1.0 - p) / (1.0 - eff))


def _weights(base):
    from coffea.analysis_tools import Weights

    weights = Weights(len(base), storeIndividual=False)
    weights.add("generator", np.asarray(base, dtype=np.float64))
    return weights


def _as_dict(weights, nominal: str, with_variations: bool) -> dict:
    out = {nominal: weights.weight()}
    if with_variations:
        for name in VARIATIONS:
            out[f"{name}_up"] = weights.weight(f"{name}Up")
            out[f"{name}_down"] = weights.weight(f"{name}Down")
    return out


def method_1a_weights(base, counts, tagged, eff, sf: dict, heavy, nominal: str = "nominal",
                      with_variations: bool = True) -> dict:
    """Event weights ``{nominal: w, "btag_bc_up": ..., ...}``: ``base`` per event, the rest flat
    per jet (``counts`` per event); ``sf`` has the scale factors for ``central``, ``up``, ``down``;
    ``heavy`` marks b and c jets (varied together), the others are light."""
    weights = _weights(base)
    eff = np.clip(eff, _EFF_FLOOR, 1.0 - _EFF_FLOOR)
    central = jet_factors(tagged, eff, sf["central"])

    def product(factors, group):
        return per_event_product(np.where(group, factors, 1.0), counts)

    for name, group in zip(VARIATIONS, (heavy, ~heavy)):
        if with_variations:
            weights.add(name, product(central, group), product(jet_factors(tagged, eff, sf["up"]), group),
                        product(jet_factors(tagged, eff, sf["down"]), group))
        else:
            weights.add(name, product(central, group))
    return _as_dict(weights, nominal, with_variations)


def truth_tag_weights(base, counts, eff, sf: dict, heavy, n_required: int, key: int, entries, seed: int = 0,
                      nominal: str = "nominal", with_variations: bool = True):
    """Truth tagging: (weights dict as :func:`method_1a_weights`, drawn tags flat per jet).

    Each event weighs P(at least ``n_required`` of its jets tagged), with p = SF·ε per jet; the
    tags used downstream (pairing) are one configuration drawn with probability ∝ its weight,
    from uniforms keyed on (file ``key``, ``entries``: each event's entry number in the file,
    jet position, ``seed``).
    """
    weights = _weights(base)
    eff = np.clip(eff, _EFF_FLOOR, 1.0 - _EFF_FLOOR)

    def probability(sf_values):
        return probability_at_least(padded(np.clip(sf_values * eff, 0.0, 1.0), counts), n_required)

    p_central = np.clip(sf["central"] * eff, 0.0, 1.0)
    block = padded(p_central, counts)
    nominal_p = probability_at_least(block, n_required)
    weights.add("btag_truth_tag", nominal_p)
    if with_variations:
        safe = np.where(nominal_p > 0, nominal_p, 1.0)
        for name, group in zip(VARIATIONS, (heavy, ~heavy)):
            up = probability(np.where(group, sf["up"], sf["central"]))
            down = probability(np.where(group, sf["down"], sf["central"]))
            weights.add(name, np.ones(len(base)), up / safe, down / safe)
    u = event_uniforms(key, entries, block.shape[1] if block.ndim == 2 else 0, seed)
    drawn = draw_tagged(block, u, n_required)
    width = block.shape[1]
    inside = np.arange(width)[None, :] < counts[:, None]
    return _as_dict(weights, nominal, with_variations), drawn[inside]
