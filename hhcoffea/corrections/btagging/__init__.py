"""b-tagging as data: working points, how a jet's tag is read, efficiency maps and scale factors
(correctionlib), and event weights (scale factors by method 1a, truth tagging).

Modules: ``working_points`` (the table, :class:`TagRule`), ``config`` (the job's ``btagging:``
section per dataset), ``maps`` (correctionlib I/O), ``measure`` (efficiency counts to maps),
``weights`` (method 1a, truth-tag weights via coffea's ``Weights``) and ``truth_tag`` (the
Poisson-binomial probabilities and per-event draws).
"""

from .config import METHODS, BTagging, BTagSetup, measure_options, parse_btagging
from .maps import BTagCorrections, default_scale_factor_path, efficiency_correction_set, efficiency_maps
from .weights import VARIATIONS
from .working_points import TagRule, WorkingPoint, emulation_bits, load_working_points

__all__ = [
    "METHODS",
    "VARIATIONS",
    "BTagCorrections",
    "BTagging",
    "BTagSetup",
    "TagRule",
    "WorkingPoint",
    "default_scale_factor_path",
    "efficiency_correction_set",
    "efficiency_maps",
    "emulation_bits",
    "load_working_points",
    "measure_options",
    "parse_btagging",
]
