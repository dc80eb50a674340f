"""hhcoffea: a plugin-based coffea framework for HH->4b (and HHH->6b) searches."""

__version__ = "0.1.0"
