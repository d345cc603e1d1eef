"""The drop-in processors inside an unchanged ``clrs.models.BaselineModel``."""

import functools

import clrs
import jax
import numpy as np
import pytest

import deq_clrs
from deq_clrs.training import data as data_lib

HIDDEN = 16
BATCH = 4


@functools.lru_cache(maxsize=None)
def batch_of(algorithm: str, nodes: int, seed: int = 0):
  (feedback,) = data_lib.sample_batches(algorithm, nodes, BATCH, 1, seed)
  return feedback, data_lib.algorithm_spec(algorithm)


def make_model(spec, feedback, factory, lr=1e-2):
  return clrs.models.BaselineModel(
      spec=spec, dummy_trajectory=feedback, processor_factory=factory,
      hidden_dim=HIDDEN, encode_hints=False, decode_hints=False,
      learning_rate=lr, grad_clip_max_norm=1.0)


def processor_params(params):
  return {k: v for k, v in params.items() if 'clrs_processor' in k}


# Minutes each (tests/test_readme.py runs the same drop-in path on bfs in
# the default run).
@pytest.mark.slow
@pytest.mark.parametrize('algorithm', ['bfs', 'insertion_sort'])
def test_deq_processor_trains_and_predicts_in_baseline_model(algorithm):
  # bfs: node-pointer output; insertion_sort: a sorting algorithm.
  raw16, spec = batch_of(algorithm, 16)
  raw64, _ = batch_of(algorithm, 64)
  train16 = deq_clrs.one_shot_feedback(raw16)
  train64 = deq_clrs.one_shot_feedback(raw64)
  log = deq_clrs.SolverStatsLog()
  factory = deq_clrs.get_processor_factory('deq_mpnn', stats_log=log)
  model = make_model(spec, train16, factory)
  model.init(train16.features, seed=0)
  before = processor_params(model.params)
  assert before, 'no processor parameters were registered'

  # A fixed batch; the sorting loss is noisy (CLRS's Sinkhorn decoder adds
  # Gumbel noise in training), so compare the first and last five steps.
  losses = [float(model.feedback(jax.random.PRNGKey(i), train16))
            for i in range(30)]
  assert np.all(np.isfinite(losses))
  assert np.mean(losses[-5:]) < 0.85 * np.mean(losses[:5]), losses
  after = processor_params(model.params)
  moved = [float(np.max(np.abs(after[m][p] - before[m][p])))
           for m in before for p in before[m]]
  assert max(moved) > 1e-4, 'processor parameters did not change'

  # One training step at 64 nodes too.
  assert np.isfinite(float(model.feedback(jax.random.PRNGKey(99), train64)))
  records = log.drain()
  assert len(records) == 31  # one processor call per feedback
  assert records[-1].solver.iterations.shape == (BATCH,)

  # Predict at 16 and 64 nodes with the evaluation twin.
  eval_model = make_model(spec, train16, factory.for_evaluation())
  eval_model.params = model.params
  for fb, nodes in [(train16, 16), (train64, 64)]:
    preds, _ = eval_model.predict(jax.random.PRNGKey(0), fb.features)
    for out in fb.outputs:
      assert preds[out.name].data.shape == out.data.shape
    score = clrs.evaluate(fb.outputs, preds)['score']
    assert 0.0 <= score <= 1.0
    (rec,) = log.drain()
    assert rec.solver.iterations.shape == (BATCH,)
    assert np.all(rec.solver.iterations >= 1)


def test_one_shot_path_never_reads_the_true_step_count():
  raw, spec = batch_of('bfs', 16)
  rng = np.random.default_rng(0)
  corrupt_hints = []
  for dp in raw.features.hints:
    data = np.array(dp.data, copy=True)
    data[1:] = rng.permutation(data[1:].ravel()).reshape(data[1:].shape) + 1
    corrupt_hints.append(clrs.DataPoint(dp.name, dp.location, dp.type_, data))
  corrupted = clrs.Feedback(
      features=clrs.Features(
          inputs=raw.features.inputs, hints=tuple(corrupt_hints),
          lengths=rng.integers(1, 100, size=raw.features.lengths.shape)),
      outputs=raw.outputs)
  # Extra time steps of hints (a longer trajectory) must not matter either.
  longer = clrs.Feedback(
      features=raw.features._replace(hints=tuple(
          clrs.DataPoint(dp.name, dp.location, dp.type_,
                         np.concatenate([dp.data] + [dp.data[-1:]] * 5))
          for dp in raw.features.hints)),
      outputs=raw.outputs)

  log = deq_clrs.SolverStatsLog()
  factory = deq_clrs.get_processor_factory('deq_mpnn', stats_log=log,
                                           evaluation=True)
  clean = deq_clrs.one_shot_feedback(raw)
  model = make_model(spec, clean, factory)
  model.init(clean.features, seed=0)
  want, _ = model.predict(jax.random.PRNGKey(0), clean.features)
  for variant in (corrupted, longer):
    shot = deq_clrs.one_shot_feedback(variant)
    assert all(dp.data.shape[0] == 1 for dp in shot.features.hints)
    np.testing.assert_array_equal(shot.features.lengths, 1)
    got, _ = model.predict(jax.random.PRNGKey(0), shot.features)
    for name in want:
      np.testing.assert_array_equal(got[name].data, want[name].data)
  # Exactly one equilibrium solve per predict: the processor ran once.
  assert len(log.drain()) == 3


@pytest.mark.slow
def test_forgetting_one_shot_data_is_an_error():
  raw, spec = batch_of('bfs', 8)
  assert raw.features.hints[0].data.shape[0] > 2  # several steps
  factory = deq_clrs.get_processor_factory(
      'deq_mpnn', solver='fixed_point', max_iter=2, eval_max_iter=2,
      jac_reg_weight=0.0)  # the cheapest to compile
  model = make_model(spec, raw, factory)
  model.init(raw.features, seed=0)  # init alone runs no step
  # (The one-shot tests above are the other half: no error on one-shot
  # data, in training and prediction.)
  message = (r'once per hint time step, so the model would be given the '
             r'true number of algorithm steps\. Feed one-shot data: '
             r'model\.feedback\(rng, deq_clrs\.one_shot_feedback')
  with pytest.raises(jax.errors.JaxRuntimeError, match=message):
    model.predict(jax.random.PRNGKey(0), raw.features)
  # Last: a failed feedback leaves the model without parameters (CLRS
  # donates them to the jitted step).
  with pytest.raises(jax.errors.JaxRuntimeError, match=message):
    float(model.feedback(jax.random.PRNGKey(0), raw))  # float: wait for it


@pytest.mark.slow
def test_evaluation_twin_uses_the_evaluation_budget():
  raw, spec = batch_of('bfs', 16)
  fb = deq_clrs.one_shot_feedback(raw)
  log = deq_clrs.SolverStatsLog()
  # Tolerances 0: every graph runs to its cap, so the cap is visible.
  factory = deq_clrs.get_processor_factory(
      'deq_mpnn', stats_log=log, rel_tol=0.0, abs_tol=0.0, max_iter=3,
      eval_max_iter=11)
  model = make_model(spec, fb, factory)
  model.init(fb.features, seed=0)
  model.feedback(jax.random.PRNGKey(0), fb)
  (train_rec,) = log.drain()
  np.testing.assert_array_equal(train_rec.solver.iterations, 3)
  assert not np.any(train_rec.solver.converged)
  eval_model = make_model(spec, fb, factory.for_evaluation())
  eval_model.params = model.params  # same parameter names
  eval_model.predict(jax.random.PRNGKey(0), fb.features)
  (eval_rec,) = log.drain()
  np.testing.assert_array_equal(eval_rec.solver.iterations, 11)
  summary = deq_clrs.SolverStatsLog.summarize([train_rec, eval_rec])
  assert summary['iterations_max'] == 11
  assert summary['converged_fraction'] == 0.0


def test_mpnn_kind_runs_the_cell_once_per_step():
  raw, spec = batch_of('bfs', 16)
  factory = deq_clrs.get_processor_factory('mpnn')
  model = make_model(spec, raw, factory)
  model.init(raw.features, seed=0)
  preds, _ = model.predict(jax.random.PRNGKey(0), raw.features)
  assert preds['pi'].data.shape == raw.outputs[0].data.shape
  # Unlike DEAR, the step-by-step model depends on how many steps it runs.
  shot, _ = model.predict(jax.random.PRNGKey(0),
                          deq_clrs.one_shot_features(raw.features))
  assert not np.allclose(shot['pi'].data, preds['pi'].data)


@pytest.mark.parametrize('kind,options,match', [
    ('deq_gat', {}, 'unknown processor kind'),
    ('deq_mpnn', {'max_iters': 5},
     r"unknown processor option\(s\) \['max_iters'\]"),
    ('mpnn', {'rel_tol': 0.1}, 'only apply to equilibrium'),
    ('deq_mpnn', {'solver': 'broyden'}, 'unknown solver method'),
    ('deq_mpnn', {'backward': 'exact'}, 'unknown backward mode'),
    ('deq_mpnn', {'aggregation': 'min'}, 'unknown aggregation'),
    ('mpnn', {'msg_mlp': 'deep'}, 'unknown msg_mlp'),
])
def test_bad_factory_arguments_are_refused(kind, options, match):
  with pytest.raises(ValueError, match=match):
    deq_clrs.get_processor_factory(kind, **options)


def test_factory_options_reach_the_configs():
  factory = deq_clrs.get_processor_factory(
      'deq_triplet_mpnn', solver='fixed_point', max_iter=7, rel_tol=0.01,
      backward='implicit', linear_solver='bicgstab', nb_triplet_fts=4,
      noise_std=0.0, jac_reg_weight=1e-4)
  assert factory.cell.kind == 'triplet_mpnn'
  assert factory.cell.nb_triplet_fts == 4
  assert factory.deq.solver.method == 'fixed_point'
  assert factory.deq.solver.max_iter == 7
  assert factory.deq.solver.rel_tol == 0.01
  assert factory.deq.backward.mode == 'implicit'
  assert factory.deq.backward.linear_solver == 'bicgstab'
  assert factory.deq.jac_reg_weight == 1e-4
  assert factory.for_evaluation().evaluation
  assert not factory.evaluation


@pytest.mark.parametrize('kind', ['deq_mpnn', 'mpnn', 'deq_triplet_mpnn'])
def test_factory_accepts_the_message_and_cayley_options(kind):
  default = deq_clrs.get_processor_factory(kind)
  assert default.cell.msg_mlp == 'reference'
  assert default.cell.gate_bias == 0.0
  assert default.cell.cayley is False
  factory = deq_clrs.get_processor_factory(kind, msg_mlp='simple',
                                           cayley=True)
  assert factory.cell.msg_mlp == 'simple'
  assert factory.cell.cayley is True
  assert factory.for_evaluation().cell == factory.cell
  assert factory.cell.build(8).config.cayley is True


# The equilibrium kind compiles a solver: behind the slow marker.
@pytest.mark.parametrize('kind', [pytest.param('deq_mpnn',
                                               marks=pytest.mark.slow),
                                  'mpnn'])
def test_mask_pointers_points_only_along_edges(kind):
  """CLRS's inf_bias through ``mask_pointers``: every predicted pointer of
  an untrained model is an edge or the node itself; without it, not."""
  raw, spec = batch_of('bellman_ford', 12, seed=3)
  adj = np.asarray([d.data for d in raw.features.inputs
                    if d.name == 'adj'][0]) > 0
  batch = deq_clrs.one_shot_feedback(raw) if kind == 'deq_mpnn' else raw

  def pointers(**options):
    options = dict(options, solver='fixed_point', max_iter=3,
                   eval_max_iter=3) if kind == 'deq_mpnn' else options
    model = make_model(spec, batch,
                       deq_clrs.get_processor_factory(kind, **options))
    model.init(batch.features, seed=0)
    out, _ = model.predict(jax.random.PRNGKey(0), batch.features)
    return np.asarray(out['pi'].data).astype(int)

  def along_edges(pi):
    rows = np.arange(pi.shape[1])
    return adj[np.arange(BATCH)[:, None], pi, rows[None]] | (
        pi == rows[None])

  assert along_edges(pointers(mask_pointers=True)).all()
  assert not along_edges(pointers()).all()
