"""Measurements of DEAR inside CLRS's stock ``BaselineModel`` (nothing here
trains a model for its own sake: a cell is trained only to be measured).

* :mod:`~deq_clrs.measure.baseline`: the drop-in path every measurement
  uses: ``clrs.models.BaselineModel`` with a ``deq_clrs`` processor, its
  jitted ``init`` and the compiled memory of its ``feedback`` and
  ``predict``, all through CLRS's public API.
* :mod:`~deq_clrs.measure.speed`: speed, memory and compilations of DEAR
  against step-by-step models (``python -m experiments.benchmark``).
* :mod:`~deq_clrs.measure.gradient_agreement`: how well a backward mode's
  gradient (DEAR's phantom) agrees with the implicit gradient.
* :mod:`~deq_clrs.measure.gradient_run`: the gradient-agreement run: its
  config, and the DEAR cell it measures (trained here or loaded from a run).

The modules import CLRS; import them by name (this file imports nothing).
"""
