"""End-to-end tests of the experiments pipeline (tiny configs)."""

import json
import os

import jax
import numpy as np
import pytest

from deq_clrs import training
from deq_clrs.training import checkpoints as ckpt_lib
from deq_clrs.training import data as data_lib
from deq_clrs.training import models as models_lib
from experiments.configs import test as test_config

RESULT_FIELDS = ('algorithm', 'model', 'seed', 'config', 'val_score',
                 'test_scores', 'solver', 'gt_steps_mean', 'train_seconds',
                 'seconds_per_sample')


@pytest.fixture(scope='session')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('data'))


def tiny_config(data_dir, **overrides):
  config = test_config.get_config()
  config.data_dir = data_dir
  for key, value in overrides.items():
    config[key] = value
  return config


class Interrupted(Exception):
  pass


def test_tiny_dear_run_writes_every_result_field(data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  results = training.train_and_evaluate(tiny_config(data_dir), workdir)
  with open(os.path.join(workdir, 'results.json')) as f:
    saved = json.load(f)
  assert saved == json.loads(json.dumps(results))
  for field in RESULT_FIELDS:
    assert field in saved, field
  assert saved['algorithm'] == 'bfs' and saved['model'] == 'dear'
  size = '12'
  assert set(saved['test_scores']) == {size}
  assert 0.0 <= saved['test_scores'][size]['score'] <= 1.0
  assert 'pi' in saved['test_scores'][size]  # bfs's one output
  solver = saved['solver'][size]
  assert solver['graphs'] == 8
  assert 1 <= solver['iterations_mean'] <= solver['iterations_max'] <= 20
  assert 0.0 <= solver['converged_fraction'] <= 1.0
  assert saved['gt_steps_mean'][size] > 1
  assert saved['seconds_per_sample'][size] > 0
  assert saved['train_seconds'] > 0
  assert saved['config']['hidden_size'] == 16
  assert os.listdir(os.path.join(workdir, 'tensorboard'))
  assert ckpt_lib.Checkpointer(workdir).latest_step() == 4

  # Evaluation only: the saved best checkpoint on another size.
  evaluated = training.evaluate_checkpoint(workdir, [8])
  assert set(evaluated['test_scores']) == {'8'}
  assert evaluated['params_step'] == saved['best_step']
  assert os.path.exists(os.path.join(workdir, 'eval_results.json'))
  again = training.evaluate_checkpoint(workdir, [12], output=str(
      tmp_path / 'again.json'))
  assert again['test_scores'] == saved['test_scores']
  # Other solver settings for evaluation only (accuracy against speed):
  # tolerance 0 runs every graph to the new cap of 3 iterations.
  capped = training.evaluate_checkpoint(
      workdir, [12], output=str(tmp_path / 'capped.json'),
      solver_overrides={'rel_tol': 0.0, 'eval_max_iter': 3})
  assert capped['solver']['12']['iterations_max'] == 3
  assert capped['solver']['12']['converged_fraction'] == 0.0
  assert capped['solver_overrides'] == {'rel_tol': 0.0, 'eval_max_iter': 3}
  with pytest.raises(ValueError, match='unknown solver settings'):
    training.evaluate_checkpoint(workdir, [12], output=str(
        tmp_path / 'bad.json'), solver_overrides={'tolerance': 0.1})


def test_interrupted_then_resumed_equals_uninterrupted(data_dir, tmp_path):
  config = tiny_config(data_dir, train_steps=6, model='nar')
  straight = training.train_and_evaluate(config, str(tmp_path / 'straight'))

  workdir = str(tmp_path / 'resumed')

  def crash(step):
    if step == 5:  # after the checkpoint at step 4, before the one at 6
      raise Interrupted

  with pytest.raises(Interrupted):
    training.train_and_evaluate(config, workdir, hooks=[crash])
  assert ckpt_lib.Checkpointer(workdir).latest_step() == 4
  resumed = training.train_and_evaluate(config, workdir)

  for key in ('val_score', 'best_step', 'test_scores', 'final_train_loss',
              'train_steps'):
    assert resumed[key] == straight[key], key
  # And the parameters themselves, which did change after step 4.
  def restored(path, step=None):
    checkpointer = ckpt_lib.Checkpointer(path)
    state = checkpointer.restore(None, step)
    checkpointer.close()
    return state
  final, replayed = restored(str(tmp_path / 'straight')), restored(workdir)
  assert int(final['step']) == int(replayed['step']) == 6
  del final['train_seconds'], replayed['train_seconds']  # wall time
  jax.tree_util.tree_map(np.testing.assert_array_equal, final, replayed)
  at_4 = restored(workdir, 4)
  assert any(not np.array_equal(x, y) for x, y in zip(
      jax.tree_util.tree_leaves(at_4['params']),
      jax.tree_util.tree_leaves(final['params'])))


def test_nar_with_hints_and_a_stock_clrs_processor(data_dir, tmp_path):
  config = tiny_config(data_dir, model='nar_hints', processor='clrs:mpnn',
                       train_steps=2)
  results = training.train_and_evaluate(config, str(tmp_path / 'run'))
  assert results['solver'] is None  # not an equilibrium model
  assert results['processor'] == 'clrs:mpnn'
  assert set(results['test_scores']['12']) == {'score', 'pi'}


def test_sorting_outputs_become_permutation_pointers(data_dir):
  spec = data_lib.algorithm_spec('insertion_sort')
  assert spec['pred'][2] == 'permutation_pointer'
  assert spec['pred_mask'][2] == 'mask_one'
  test = data_lib.load_dataset('insertion_sort', 'test', 6, 3,
                               data_dir=data_dir)
  outputs = {dp.name: dp for dp in test.outputs}
  assert set(outputs) == {'pred', 'pred_mask'}
  assert isinstance(outputs['pred'].data, np.ndarray)
  # One first element per list, and each node points to its predecessor.
  np.testing.assert_array_equal(outputs['pred_mask'].data.sum(axis=1),
                                np.ones(3))
  assert outputs['pred'].data.shape == (3, 6, 6)


def test_resume_refuses_a_different_config(data_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  config = tiny_config(data_dir, train_steps=0, model='nar')
  untrained = training.train_and_evaluate(config, workdir)
  # Untrained parameters are validated and tested too.
  assert untrained['best_step'] == 0
  assert 0.0 <= untrained['val_score'] <= 1.0
  assert untrained['final_train_loss'] is None
  with pytest.raises(ValueError, match='different config'):
    training.train_and_evaluate(
        tiny_config(data_dir, train_steps=0, model='nar', hidden_size=8),
        workdir)


def test_datasets_are_cached_and_deterministic(data_dir):
  a = data_lib.load_dataset('bfs', 'test', 10, 4, data_dir=data_dir)
  files = set(os.listdir(data_dir))
  b = data_lib.load_dataset('bfs', 'test', 10, 4, data_dir=data_dir)
  assert set(os.listdir(data_dir)) == files
  np.testing.assert_array_equal(a.outputs[0].data, b.outputs[0].data)
  fresh = data_lib.load_dataset('bfs', 'test', 10, 4,
                                data_dir=data_dir + '_fresh')
  np.testing.assert_array_equal(a.outputs[0].data, fresh.outputs[0].data)
  val = data_lib.load_dataset('bfs', 'val', 10, 4, data_dir=data_dir)
  assert not np.array_equal(
      a.features.inputs[-1].data, val.features.inputs[-1].data)


def test_train_stream_is_a_function_of_seed_and_step(data_dir):
  def stream(seed):
    return data_lib.TrainStream.load('bfs', [8, 9], 8, 4, seed,
                                     data_dir=data_dir)
  a, b = stream(0), stream(0)
  for step in (0, 7, 3):
    x, y = a.batch(step), b.batch(step)
    jax.tree_util.tree_map(np.testing.assert_array_equal, x, y)
  sizes = {a.batch(s).features.inputs[0].data.shape[1] for s in range(20)}
  assert sizes == {8, 9}
  assert any(
      not np.array_equal(a.batch(s).outputs[0].data,
                         stream(1).batch(s).outputs[0].data)
      for s in range(5))


def test_steps_only_keeps_the_number_of_steps(data_dir):
  full = data_lib.load_dataset('insertion_sort', 'val', 8, 4,
                               data_dir=data_dir, with_hints=True)
  small = data_lib.steps_only(full)
  assert len(small.features.hints) == 1
  assert (small.features.hints[0].data.shape[0]
          == full.features.hints[0].data.shape[0])


@pytest.mark.parametrize('overrides, message', [
    (dict(algorithm='quicksort_typo'), 'valid CLRS-30 algorithms: .*bfs'),
    (dict(model='gnn'), "expected one of \\['dear', 'nar', 'nar_lt', 'nar_hints'\\]"),
    (dict(model='dear', processor='mpnn'), 'needs an equilibrium processor'),
    (dict(model='nar', processor='deq_mpnn'), 'only valid with --model=dear'),
    (dict(model='nar', processor='clrs:nope'), 'unknown CLRS processor'),
    (dict(hidden_size=0), 'hidden_size must be >= 1'),
    (dict(test_sizes=()), 'test_sizes must name at least one'),
    (dict(learning_rate=0.0), 'learning_rate must be > 0'),
])
def test_bad_configs_are_refused(data_dir, overrides, message):
  with pytest.raises(ValueError, match=message):
    models_lib.check_config(tiny_config(data_dir, **overrides))


def test_bad_solver_options_are_refused(data_dir):
  config = tiny_config(data_dir)
  config.deq.solver = 'newton'
  with pytest.raises(ValueError, match='solver method'):
    models_lib.check_config(config)
