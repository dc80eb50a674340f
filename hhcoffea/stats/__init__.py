"""Statistics: pyhf workspaces, CLs limits, kappa_lambda constraints.

Modules:

* :mod:`~hhcoffea.stats.workspace` -- hist histograms -> HistFactory JSON, background-only
  workspaces and signal patchsets;
* :mod:`~hhcoffea.stats.morphing` -- non-resonant templates at any kappa_lambda from three basis samples;
* :mod:`~hhcoffea.stats.likelihood` -- :class:`FastModel`, pyhf's likelihood in numpy with gradients;
* :mod:`~hhcoffea.stats.limits` -- fast asymptotic CLs upper limits (pyhf's qtilde definitions);
* :mod:`~hhcoffea.stats.kappa` -- kappa_lambda intervals (CLs with mu as POI, profile likelihood
  with kappa_lambda as POI) and the equivalent luminosity;
* :mod:`~hhcoffea.stats.plots` -- Brazil band and kappa_lambda scan plots;
* :mod:`~hhcoffea.stats.cli` -- ``hhcoffea limits`` and :func:`run_statistics` (the job's
  ``statistics:`` section is documented there).
"""
