"""Fixtures network_test and step_test share: a bfs batch and an untrained
NAR (the alignment teacher), built once per test module."""

import numpy as np
import pytest

from deq_clrs.training import data as data_lib
from deq_clrs.training import models as models_lib
from deq_clrs.training import parallel
from deq_clrs.training.network_test import ALGORITHM
from deq_clrs.training.network_test import _config


@pytest.fixture(scope='module')
def batch():
  feedback = data_lib.generate(ALGORITHM, 6, 4, seed=1)
  # Graphs of different true lengths, so the per-graph steps matter.
  assert len(set(np.asarray(feedback.features.lengths).tolist())) > 1
  return feedback


@pytest.fixture(scope='module')
def nar(batch):
  models = models_lib.build_models(_config('nar'), batch)
  return models, parallel.to_host(models.initial_state.params)
