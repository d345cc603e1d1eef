"""Gradient agreement: the phantom gradient vs. the implicit gradient on a
(briefly) trained DEAR cell inside CLRS's BaselineModel.

The tests that train a cell take minutes on a 2-core CPU: they are marked
slow (CI runs them with --runslow)."""

import json

import jax
import numpy as np
import pytest

import deq_clrs
from deq_clrs.measure import gradient_agreement
from deq_clrs.measure import gradient_run
from deq_clrs.training import data as data_lib

HIDDEN = 32


@pytest.fixture(scope='module')
def brief_cell():
  """DEAR (phantom(1), rel_tol 0.1) trained for 30 steps on bfs, 8 nodes."""
  return gradient_run.train_dear_cell('bfs', sizes=(8,), hidden_dim=HIDDEN,
                                      batch_size=8, steps=30, seed=0)


@pytest.fixture(scope='module')
def grad_batch():
  """8 graphs of 8 nodes. Plain iteration reaches the fixed point of every
  one (on ~15 % of graphs it does not, for this cell; such graphs would be
  dropped, at the cost of a recompilation for the smaller batch)."""
  (feedback,) = data_lib.sample_batches('bfs', 8, 8, 1, 4)
  return feedback


def test_cosine_similarity_and_processor_params():
  a = {'net/deq_clrs_processor/cell/w': {'b': np.array([1.0, 2.0])},
       'net/~_construct_encoders_decoders/enc': {'w': np.array([[3.0]])}}
  neg = jax.tree_util.tree_map(lambda x: -x, a)
  assert gradient_agreement.cosine_similarity(a, a) == pytest.approx(1.0)
  assert gradient_agreement.cosine_similarity(a, neg) == pytest.approx(-1.0)
  b = {'net/deq_clrs_processor/cell/w': {'b': np.array([2.0, -1.0])},
       'net/~_construct_encoders_decoders/enc': {'w': np.array([[0.0]])}}
  assert gradient_agreement.cosine_similarity(a, b) == pytest.approx(0.0)
  assert list(gradient_agreement.processor_params(a)) == [
      'net/deq_clrs_processor/cell/w']
  with pytest.raises(ValueError, match='one structure'):
    gradient_agreement.cosine_similarity(
        a, gradient_agreement.processor_params(a))
  assert gradient_agreement.backward_label({}) == 'phantom(1)'
  assert gradient_agreement.backward_label(
      {'phantom_steps': 30, 'phantom_damping': 0.5}) == (
          'phantom(30, damping 0.5)')


@pytest.mark.slow
def test_implicit_vs_implicit_agree(brief_cell, grad_batch):
  # The reference against itself with the adjoint system solved 100x
  # tighter: the comparison must see the same parameters, batch and rng on
  # both sides, and the reference must be converged on this cell.
  options = dict(gradient_agreement.REFERENCE_OPTIONS,
                 **gradient_agreement.REFERENCE_CHECK_OPTIONS)
  r = gradient_agreement.gradient_agreement(
      'bfs', brief_cell.params, grad_batch, hidden_dim=HIDDEN,
      factory_options=options, at_reference_fixed_point=False,
      check_reference=False)
  print(gradient_agreement.format_gradient_agreement(r))
  assert r['label'] == 'implicit'
  assert r['cosine_all'] == pytest.approx(1.0, abs=1e-4)
  assert r['cosine_processor'] == pytest.approx(1.0, abs=1e-4)
  assert r['norm_ratio'] == pytest.approx(1.0, abs=1e-3)
  assert r['tested']['loss'] == pytest.approx(r['reference']['loss'])
  assert r['reference']['finite']
  assert np.isnan(r['reference_check_cosine'])  # not asked for
  # The reference converged on every graph.
  assert r['reference_rel_residual'] <= 1e-5
  assert r['reference']['solver']['converged_fraction'] == 1.0
  assert r['graphs'] == 8 and not r['dropped_graphs']
  assert 'tested_at_reference_fixed_point' not in r
  assert 'implicit vs implicit: cosine all=' in (
      gradient_agreement.format_gradient_agreement(r))
  json.dumps(r)


@pytest.mark.slow
def test_many_step_phantom_matches_the_implicit_gradient(brief_cell,
                                                         grad_batch):
  # k phantom steps from the fixed point give the Neumann series of
  # (I - J)^-1 truncated after k terms. On this cell the slowest mode
  # contracts by ~0.997 per step, so it takes ~1000 steps to converge
  # (30 steps damped by 0.5 give cosine ~0.83 here).
  r = gradient_agreement.gradient_agreement(
      'bfs', brief_cell.params, grad_batch, hidden_dim=HIDDEN,
      factory_options={'phantom_steps': 1000}, at_own_tolerance=False,
      check_reference=False)
  print(gradient_agreement.format_gradient_agreement(r))
  assert r['label'] == 'phantom(1000)'
  assert 'tested' not in r
  assert r['cosine_all'] > 0.99
  assert r['cosine_processor'] > 0.99
  assert 0.95 < r['norm_ratio'] < 1.05


@pytest.mark.slow
def test_one_step_phantom_gradient_is_reported(brief_cell, grad_batch):
  # DEAR's gradient, at its own tolerance (0.1) and at the implicit fixed
  # point: reported, whatever it is.
  r = gradient_agreement.gradient_agreement(
      'bfs', brief_cell.params, grad_batch, hidden_dim=HIDDEN,
      check_reference=False)
  print(gradient_agreement.format_gradient_agreement(r))
  assert r['label'] == 'phantom(1)'
  for res in (r['tested'], r['tested_at_reference_fixed_point']):
    assert -1.0 <= res['cosine_all'] <= 1.0
    assert -1.0 <= res['cosine_processor'] <= 1.0
  assert r['tested']['solver']['rel_residual_max'] <= 0.1
  assert r['tested_at_reference_fixed_point']['solver'][
      'rel_residual_max'] <= 1e-5
  # The measurement tells 1 step from 1000 (cosine > 0.99 above).
  assert r['tested_at_reference_fixed_point']['cosine_all'] < 0.95

  # Control: the same reference gradient on other graphs is far from it, so
  # a comparison that mixed up batches could not reach the 0.99 above.
  (other,) = data_lib.sample_batches('bfs', 8, 8, 1, 12)
  grads = [gradient_agreement.equilibrium_gradient(
      'bfs', brief_cell.params, deq_clrs.one_shot_feedback(fb),
      hidden_dim=HIDDEN, options=r['reference']['options']).grads
           for fb in (grad_batch, other)]
  control = gradient_agreement.cosine_similarity(*grads)
  print(f'implicit gradient, this batch vs another: cosine {control:.4f}')
  assert control < 0.95
