"""Statistics: pyhf workspaces, CLs limits, kappa_lambda constraints.

Modules:

* :mod:`~hhcoffea.stats.workspace` -- hist histograms -> HistFactory JSON, background-only
  workspaces and signal patchsets;
* :mod:`~hhcoffea.stats.morphing` -- non-resonant templates at any kappa_lambda from three basis samples;
* :mod:`~hhcoffea.stats.likelihood` -- :class:`FastModel`, pyhf's likelihood in numpy with gradients
  (one dataset or many toys at once); :mod:`~hhcoffea.stats.model_layout` reads a model into its
  (sample, channel) rows;
* :mod:`~hhcoffea.stats.limits` -- CLs upper limits, asymptotic (pyhf's qtilde definitions) or
  from toys;
* :mod:`~hhcoffea.stats.kappa` -- kappa_lambda intervals (CLs with mu as POI, profile likelihood
  with kappa_lambda as POI) and the equivalent luminosity;
* :mod:`~hhcoffea.stats.plots` -- Brazil band and kappa_lambda scan plots;
* :mod:`~hhcoffea.stats.config` -- the job's ``statistics:`` section and the data hypotheses;
* :mod:`~hhcoffea.stats.analysis` -- :func:`run_statistics`: every analysis, its files and summary;
* ``hhcoffea limits`` is :mod:`hhcoffea.cli.limits`.
"""

__all__: list[str] = []  # the modules above are the API; nothing is imported eagerly
