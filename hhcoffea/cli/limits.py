"""``hhcoffea limits JOB.yaml``: pyhf workspaces, CLs limits and kappa_lambda scans from a job's
histograms (the library is :mod:`hhcoffea.stats.analysis`)."""

from __future__ import annotations

from ..stats.cli import add_arguments, main

__all__ = ["add_arguments", "main"]
