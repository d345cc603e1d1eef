"""Tests of the run's state: its checkpoint is the layout runs were written
in before :class:`RunState` (runs in progress and carried archives hold
it), and a run resumes from such a checkpoint."""

import os
import shutil

import jax
import numpy as np
import pytest

from deq_clrs import training
from deq_clrs.training import checkpoints as ckpt_lib
from deq_clrs.training import evaluation
from deq_clrs.training import parallel
from deq_clrs.training import run_state as run_state_lib
from deq_clrs.training import saved_runs
from deq_clrs.training.loop_test import tiny_config


@pytest.fixture(scope='module')
def data_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp('data'))


class Interrupted(Exception):
  pass


def _models(config):
  val_set = evaluation.load_eval_set(config, 'val', config.val_size)
  return saved_runs.build_models(config, val_set)


# The checkpoint as the code before RunState assembled it, kept verbatim:
# saved_runs.initial_state (the template) and loop._save (the update).
def _legacy_initial_state(models):
  params = parallel.to_host(models.initial_state.params)
  return {
      'params': params,
      'opt_state': parallel.to_host(models.initial_state.opt_state),
      'best_params': params,
      'step': ckpt_lib.scalar(0, np.int64),
      'best_step': ckpt_lib.scalar(0, np.int64),
      'best_val': ckpt_lib.scalar(-np.inf),
      'best_val_score': ckpt_lib.scalar(-np.inf),
      'best_val_loss': ckpt_lib.scalar(np.inf),
      'train_seconds': ckpt_lib.scalar(0.0),
  }


def _legacy_save(checkpointer, state, train_state, best_params, step,
                 train_seconds):
  state.update(
      params=parallel.to_host(train_state.params),
      opt_state=parallel.to_host(train_state.opt_state),
      best_params=parallel.to_host(best_params),
      step=ckpt_lib.scalar(step, np.int64),
      train_seconds=ckpt_lib.scalar(train_seconds))
  checkpointer.save(step, state)


def _assert_trees_equal(a, b):
  assert (jax.tree_util.tree_structure(a)
          == jax.tree_util.tree_structure(b))
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    assert np.asarray(x).dtype == np.asarray(y).dtype
    np.testing.assert_array_equal(x, y)


def test_a_checkpoint_is_the_legacy_layout(data_dir, tmp_path):
  models = _models(tiny_config(data_dir))
  fresh = run_state_lib.initial(models)
  legacy = _legacy_initial_state(models)
  assert tuple(fresh.to_checkpoint()) == run_state_lib.CHECKPOINT_KEYS
  _assert_trees_equal(fresh.to_checkpoint(), legacy)

  # A state after some steps, written by each code path: the files read
  # back (without a template: the raw layout on disk) the same.
  params = jax.tree_util.tree_map(lambda x: x + 1, fresh.train.params)
  state = fresh.replace(
      train=fresh.train._replace(params=params), step=np.int64(7),
      best_step=np.int64(6), best_val=np.float64(0.5),
      best_val_score=np.float64(0.5), best_val_loss=np.float64(1.5),
      train_seconds=np.float64(3.0)).on_devices(models)
  new_dir, old_dir = str(tmp_path / 'new'), str(tmp_path / 'old')
  checkpointer = ckpt_lib.Checkpointer(new_dir)
  run_state_lib.save(checkpointer, state)
  written = ckpt_lib.Checkpointer(old_dir)
  legacy.update(best_step=np.asarray(6, np.int64),
                best_val=np.asarray(0.5), best_val_score=np.asarray(0.5),
                best_val_loss=np.asarray(1.5))
  _legacy_save(written, legacy, state.train, state.best_params, 7, 3.0)
  _assert_trees_equal(checkpointer.restore(None), written.restore(None))

  # Either restores into the same RunState, on the host.
  for source in (checkpointer, written):
    restored = run_state_lib.restore(source, models)
    assert isinstance(restored, run_state_lib.RunState)
    _assert_trees_equal(restored.to_checkpoint(), state.to_checkpoint())
    assert int(restored.train.step) == 7
    assert np.isnan(restored.train.loss)
  checkpointer.close()
  written.close()


def _legacy_rewrite(workdir, models, step):
  """Replaces checkpoint ``step`` of ``workdir`` by the same state written
  as the code before RunState wrote it."""
  checkpointer = ckpt_lib.Checkpointer(workdir)
  saved = checkpointer.restore(_legacy_initial_state(models), step)
  shutil.rmtree(checkpointer.step_directory(step))
  checkpointer.close()
  checkpointer = ckpt_lib.Checkpointer(workdir)
  assert checkpointer.latest_step() is None
  state = _legacy_initial_state(models)
  for key in ('best_step', 'best_val', 'best_val_score', 'best_val_loss'):
    state[key] = saved[key]
  train_state = models.stepper.state(saved['params'], saved['opt_state'],
                                     step)
  _legacy_save(checkpointer, state, train_state,
               models.stepper.replicate(saved['best_params']), step,
               float(saved['train_seconds']))
  checkpointer.close()


# Three tiny runs (minutes on 2 cores): with --runslow (CI runs it); the
# layout itself is checked above in the default run.
@pytest.mark.slow
def test_a_run_resumes_from_a_legacy_checkpoint(data_dir, tmp_path):
  config = tiny_config(data_dir, train_steps=4)
  straight = training.train_and_evaluate(config, str(tmp_path / 'straight'))

  workdir = str(tmp_path / 'legacy')

  def crash(step):
    if step == 3:  # after the checkpoint at step 2
      raise Interrupted

  with pytest.raises(Interrupted):
    training.train_and_evaluate(config, workdir, hooks=[crash])
  _legacy_rewrite(workdir, _models(config), 2)
  assert ckpt_lib.saved_steps(workdir) == [2]
  resumed = training.train_and_evaluate(config, workdir)

  for key in ('val_score', 'val_loss', 'best_step', 'test_scores',
              'test_loss', 'final_train_loss', 'train_steps'):
    assert resumed[key] == straight[key], key
  assert [e['step'] for e in resumed['history']] == [0, 2, 4]
  models = _models(config)
  final = []
  for path in (str(tmp_path / 'straight'), workdir):
    checkpointer = ckpt_lib.Checkpointer(path)
    final.append(run_state_lib.restore(checkpointer, models))
    checkpointer.close()
  assert [int(s.step) for s in final] == [4, 4]
  first, second = (s.replace(train_seconds=np.float64(0)) for s in final)
  _assert_trees_equal(first.to_checkpoint(), second.to_checkpoint())
  assert os.path.exists(os.path.join(workdir, 'results.json'))
