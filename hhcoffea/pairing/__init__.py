"""The public pairing API, everything a pairer plugin needs: the base class and result type
(:mod:`.base`), pairings and candidate order (:mod:`.combinatorics`), and the jet-column helpers
of :mod:`hhcoffea.columnar.jets`.
"""

from ..columnar.jets import (
    JetColumns,
    gather,
    leading_btagged,
    leading_btagged_block,
    leading_by_btag_then_pt,
    pair_delta_r,
)
from .base import Pairer, PairingResult, get_pairer, result_for_events, unknown_options_error
from .combinatorics import all_pairings, candidate_four_vectors, order_by_scalar_pt, select_pairing

__all__ = [
    "JetColumns",
    "Pairer",
    "PairingResult",
    "all_pairings",
    "candidate_four_vectors",
    "gather",
    "get_pairer",
    "leading_btagged",
    "leading_btagged_block",
    "leading_by_btag_then_pt",
    "order_by_scalar_pt",
    "pair_delta_r",
    "result_for_events",
    "select_pairing",
    "unknown_options_error",
]
