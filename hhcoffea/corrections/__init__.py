"""Corrections and their systematic variations, applied to the event model's columns: the jet
energy scale now; b-tagging efficiency maps and scale factors (correctionlib) next."""

from .jes import JetScaleVariation

__all__ = ["JetScaleVariation"]
