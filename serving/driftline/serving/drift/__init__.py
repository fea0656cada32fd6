"""Drift statistics: pure numpy/scipy, no I/O, no clock, no web framework.

- :mod:`.profile` owns the binning (:class:`~.profile.Layout`), the mergeable counts
  (:class:`~.profile.Histograms`) and the reference profile (build, JSON, merge).
- :mod:`.stats` turns a reference and a current histogram into per-feature statistics (PSI, KS,
  normalised Wasserstein, Jensen-Shannon, chi-square), vectorised across features.
- :mod:`.decide` turns statistics into verdicts (effect size AND corrected p-value).
- :mod:`.report` renders a verdict as a text table or a self-contained HTML page.

Callers: ``driftline.serving.monitor`` (the sidecar and the offline ``driftline drift`` tool).
"""
