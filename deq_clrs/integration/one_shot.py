"""One-shot CLRS data: the form in which DEAR never sees the number of steps.

CLRS's ``Net`` runs its processor once per hint time step and reads each
graph's outputs at its true length. With every length set to 1 and the hints
cut to their first step, it runs the processor exactly once per sample.
"""

from __future__ import annotations

import clrs
import numpy as np


def _first_step(dp: clrs.DataPoint) -> clrs.DataPoint:
  return clrs.DataPoint(name=dp.name, location=dp.location, type_=dp.type_,
                        data=dp.data[:1])


def one_shot_features(features: clrs.Features) -> clrs.Features:
  """Puts CLRS features in one-shot form for an equilibrium processor.

  Hints (time-major, [T, B, ...]) are cut to their first time step and every
  length is set to 1, so CLRS's ``Net`` runs the processor exactly once per
  sample and reads the outputs from that single step: nothing downstream
  can depend on the true number of algorithm steps.
  """
  hints = tuple(_first_step(dp) for dp in features.hints)
  lengths = np.ones_like(np.asarray(features.lengths))
  return clrs.Features(inputs=features.inputs, hints=hints, lengths=lengths)


def one_shot_feedback(feedback: clrs.Feedback) -> clrs.Feedback:
  """:func:`one_shot_features` applied to a ``Feedback``; outputs unchanged."""
  return clrs.Feedback(features=one_shot_features(feedback.features),
                       outputs=feedback.outputs)
