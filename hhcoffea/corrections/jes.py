"""Jet energy scale: a systematic variation that scales every jet's pT and mass."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["JetScaleVariation"]


@dataclass
class JetScaleVariation:
    """Jet energy scale shift: every jet's pT and mass times (1 ± size)."""

    name: str
    size: float

    def variations(self):
        return ((f"{self.name}_up", 1.0 + self.size), (f"{self.name}_down", 1.0 - self.size))
