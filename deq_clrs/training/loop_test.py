"""End-to-end tests of the training loop and its pipeline (tiny configs)."""

import json
import logging
import os

import clrs
import jax
import numpy as np
import pytest

from deq_clrs import training
from deq_clrs.training import checkpoints as ckpt_lib
from deq_clrs.training import data as data_lib
from deq_clrs.training import evaluation
from deq_clrs.training import models as models_lib
from deq_clrs.training import provenance
from deq_clrs.training import step as step_lib
from deq_clrs.training import termination
from deq_clrs.training import workdir as workdir_lib
from experiments.configs import test as test_config

RESULT_FIELDS = ('algorithm', 'model', 'seed', 'config', 'val_score',
                 'test_scores', 'test_loss', 'solver', 'gt_steps_mean',
                 'train_seconds', 'seconds_per_sample', 'load')
#: What each recorded load holds (provenance.machine_load with a snapshot).
LOAD_KEYS = {'load_1min', 'cpus', 'others_share', 'usable_cpus'}


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


def _check_per_graph_scores(saved, size):
  """Each test graph's own score is stored; bfs's one output is a pointer
  scored by accuracy over nodes, so over graphs of one size they average
  to the set's score."""
  assert 'pi' in saved['test_scores'][size]  # bfs's one output
  per_graph = saved['test_scores_per_graph'][size]
  assert len(per_graph) == 8 and all(0.0 <= x <= 1.0 for x in per_graph)
  assert np.mean(per_graph) == pytest.approx(
      saved['test_scores'][size]['score'])


# Slow-marked (CI's slow set runs it) to keep the default run under 8
# minutes on 2 cores; it took 40-60 s there.
@pytest.mark.slow
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
  _check_per_graph_scores(saved, size)
  assert list(saved['test_loss']) == [size] and np.isfinite(
      saved['test_loss'][size])
  solver = saved['solver'][size]
  assert solver['graphs'] == 8
  assert 1 <= solver['iterations_mean'] <= solver['iterations_max'] <= 20
  assert 0.0 <= solver['converged_fraction'] <= 1.0
  assert saved['gt_steps_mean'][size] > 1
  assert saved['seconds_per_sample'][size] > 0
  # The machine's load is recorded beside the time it qualifies.
  assert saved['load'][size]['cpus'] == os.cpu_count()
  assert set(saved['load'][size]) == LOAD_KEYS
  # Other processes' share of this one's CPUs during the timing (None only
  # where Linux's /proc/stat cannot be read).
  share = saved['load'][size]['others_share']
  assert share is None or 0.0 <= share <= 1.0
  assert saved['train_seconds'] > 0
  assert saved['config']['hidden_size'] == 16
  assert saved['code_version'] == provenance.code_version()
  assert saved['code_versions'] == [{'from_step': 0,
                                     **provenance.code_version()}]
  assert os.listdir(os.path.join(workdir, 'tensorboard'))
  assert ckpt_lib.Checkpointer(workdir).latest_step() == 4

  # Evaluation only: the saved best checkpoint on another size.
  evaluated = training.evaluate_checkpoint(workdir, [8])
  assert set(evaluated['test_scores']) == {'8'}
  assert evaluated['params_step'] == saved['best_step']
  assert evaluated['code_version'] == saved['code_version']
  assert os.path.exists(os.path.join(workdir, 'eval_results.json'))
  again = training.evaluate_checkpoint(workdir, [12], output=str(
      tmp_path / 'new_folder' / 'again.json'))  # the folder is made
  assert (again['test_scores'], again['test_loss']) == (
      saved['test_scores'], saved['test_loss'])
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
  # Fewer graphs per call (less memory): all 8 are still scored, in 3 calls,
  # and the file says how they were batched.
  assert evaluated['eval_batch_size'] == saved['config']['eval_batch_size']
  batched = training.evaluate_checkpoint(
      workdir, [12], output=str(tmp_path / 'batched.json'), eval_batch_size=3)
  assert batched['eval_batch_size'] == 3
  assert batched['solver']['12']['graphs'] == 8
  with pytest.raises(ValueError, match='eval_batch_size must be >= 1'):
    training.evaluate_checkpoint(workdir, [12], output=str(
        tmp_path / 'bad.json'), eval_batch_size=0)
  # Reading at the true length is nar_lt's diagnostic; dear has no steps.
  with pytest.raises(ValueError, match="for nar_lt runs only; .* 'dear' run"):
    training.evaluate_checkpoint(workdir, [12], output=str(
        tmp_path / 'bad.json'), read_at='true_length')
  assert 'read_at' not in evaluated


@pytest.mark.parametrize('model', [pytest.param('nar', marks=pytest.mark.slow),
                                   'dear'])
def test_interrupted_then_resumed_equals_uninterrupted(data_dir, tmp_path,
                                                       model):
  config = tiny_config(data_dir, train_steps=6, model=model)
  straight = training.train_and_evaluate(config, str(tmp_path / 'straight'))

  workdir = str(tmp_path / 'resumed')

  def crash(step):
    if step == 5:  # after the checkpoint at step 4, before the one at 6
      raise Interrupted

  with pytest.raises(Interrupted):
    training.train_and_evaluate(config, workdir, hooks=[crash])
  assert ckpt_lib.Checkpointer(workdir).latest_step() == 4
  resumed = training.train_and_evaluate(config, workdir)

  for key in ('val_score', 'val_loss', 'best_step', 'test_scores',
              'test_loss', 'final_train_loss', 'train_steps'):
    assert resumed[key] == straight[key], key
  # The learning curve too, but for the machine's load at each validation.
  def curve(results):
    return [{k: v for k, v in e.items() if k != 'load'}
            for e in results['history']]
  assert curve(resumed) == curve(straight)
  assert [e['step'] for e in resumed['history']] == [0, 2, 4, 6]
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


@pytest.mark.slow
def test_a_run_resumed_on_other_code_records_each_segments_code(
    data_dir, tmp_path, monkeypatch):
  config = tiny_config(data_dir, train_steps=6, model='nar')
  workdir = str(tmp_path / 'run')
  here = provenance.code_version()
  other = {'commit': 'f' * 40, 'dirty': True, 'packages': {}}

  def crash(step):
    if step == 5:  # after the checkpoint at step 4
      raise Interrupted

  with pytest.raises(Interrupted):
    training.train_and_evaluate(config, workdir, hooks=[crash])
  # Resumed from step 4 on other code, killed again before step 6: its
  # steps 4..5 are trained again, so that segment is replaced.
  monkeypatch.setattr(provenance, 'code_version', lambda: other)
  with pytest.raises(Interrupted):
    training.train_and_evaluate(config, workdir, hooks=[crash])
  monkeypatch.setattr(provenance, 'code_version', lambda: here)
  results = training.train_and_evaluate(config, workdir)
  assert results['code_versions'] == [{'from_step': 0, **here},
                                      {'from_step': 4, **here}]

  # A run begun before this record existed, finished on other code.
  workdir = str(tmp_path / 'older')
  with pytest.raises(Interrupted):
    training.train_and_evaluate(config, workdir, hooks=[crash])
  os.remove(os.path.join(workdir, workdir_lib.SEGMENTS_FILE))
  monkeypatch.setattr(provenance, 'code_version', lambda: other)
  results = training.train_and_evaluate(config, workdir)
  assert results['code_version'] == other
  assert results['code_versions'] == [{'from_step': 4, **other}]
  with open(os.path.join(workdir, workdir_lib.SEGMENTS_FILE)) as f:
    assert [json.loads(line) for line in f] == results['code_versions']


@pytest.mark.slow
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
  workdir = tmp_path / 'run'
  os.makedirs(workdir)
  saved = tiny_config(data_dir, model='nar').to_json()
  (workdir / 'config.json').write_text(saved)
  with pytest.raises(ValueError, match='different config'):
    training.train_and_evaluate(
        tiny_config(data_dir, model='nar', hidden_size=8), str(workdir))
  assert (workdir / 'config.json').read_text() == saved
  assert os.listdir(workdir) == ['config.json']


def _snapshot(workdir: str) -> dict[str, tuple[int, int]]:
  """Every file under a workdir with its size and modification time."""
  out = {}
  for folder, _, files in os.walk(workdir):
    for name in files:
      path = os.path.join(folder, name)
      out[path] = (os.path.getsize(path), os.stat(path).st_mtime_ns)
  return out


# Slow-marked (CI's slow set runs it) to keep the default run under 8
# minutes on 2 cores; about 20 s there.
@pytest.mark.slow
def test_a_finished_run_is_left_alone(data_dir, tmp_path, caplog):
  caplog.set_level(logging.INFO)
  workdir = str(tmp_path / 'run')
  config = tiny_config(data_dir, train_steps=4, model='nar')

  def crash(step):
    if step == 3:
      raise Interrupted

  with pytest.raises(Interrupted):
    training.train_and_evaluate(config, workdir, hooks=[crash])
  # Fewer steps than the checkpoint has: refused, config.json kept.
  before = _snapshot(workdir)
  with pytest.raises(ValueError, match='checkpoint at step 2, past '
                     'train_steps=1; rerun with train_steps >= 2'):
    training.train_and_evaluate(tiny_config(data_dir, train_steps=1,
                                            model='nar'), workdir)
  assert _snapshot(workdir) == before

  caplog.clear()
  results = training.train_and_evaluate(config, workdir)
  assert results['train_steps'] == 4
  assert results['final_train_loss'] is not None
  messages = [r.getMessage() for r in caplog.records]
  assert any(m.startswith('compiling (step 2): the first training step of '
                          'each batch shape (4 graphs of 8 nodes')
             for m in messages)
  (end,) = [m for m in messages if m.startswith('finished: ')]
  assert ("score = CLRS's mean of per-output scores, in [0, 1]" in end)
  assert f'checkpoints in {os.path.join(workdir, "checkpoints")}' in end
  assert os.path.join(workdir, 'tensorboard') in end
  before = _snapshot(workdir)
  for steps in (4, 2):  # the same command, and fewer steps
    caplog.clear()
    again = training.train_and_evaluate(
        tiny_config(data_dir, train_steps=steps, model='nar'), workdir)
    assert again == json.loads(json.dumps(results))
    assert _snapshot(workdir) == before  # not a byte rewritten
    (line,) = [r.getMessage() for r in caplog.records]
    assert 'is finished (4 steps' in line
    assert os.path.join(workdir, 'results.json') in line
    assert f'python -m experiments.evaluate --workdir={workdir}' in line
  assert 'more than train_steps=2' in line


@pytest.mark.parametrize('select_by', ['loss', 'score'])
def test_selection_picks_the_best_validation_entry(data_dir, tmp_path,
                                                    select_by):
  config = tiny_config(data_dir, train_steps=8, model='nar',
                       select_by=select_by, learning_rate=3e-2, test_every=4)
  results = training.train_and_evaluate(config, str(tmp_path / 'run'))
  history = results['history']
  assert [e['step'] for e in history] == [0, 2, 4, 6, 8]
  # Test scores on the learning curve where asked for (every 4 steps).
  assert [e['step'] for e in history if 'test_scores' in e] == [0, 4, 8]
  key = (lambda e: e['val_loss']) if select_by == 'loss' else (
      lambda e: -e['val_score'])
  best = min(history, key=key)  # the first of equals, as the loop keeps
  assert results['best_step'] == best['step']
  assert results['val_loss'] == best['val_loss']
  assert results['val_score'] == best['val_score']
  assert results['select_by'] == select_by
  # The losses move, so the choice is not trivially the first entry.
  assert len({e['val_loss'] for e in history}) > 1
  # Each validation records the machine's load (the report marks train s of
  # runs that shared their cores).
  for e in history:
    assert set(e['load']) == LOAD_KEYS
    assert e['load']['cpus'] == os.cpu_count()
    assert e['load']['usable_cpus'] in (None, *range(1, os.cpu_count() + 1))


def test_er_edge_probabilities_reach_the_sampler(data_dir):
  def density(probs):
    fb = data_lib.load_dataset('bfs', 'test', 12, 16, data_dir=data_dir,
                               er_probs=probs)
    adj = {dp.name: dp for dp in fb.features.inputs}['adj'].data
    off_diagonal = adj * (1 - np.eye(12))
    return off_diagonal.sum() / (16 * 12 * 11)
  assert density((0.1,)) < 0.2
  assert density((0.9,)) > 0.8
  mixed = data_lib.load_dataset('bfs', 'test', 12, 64, data_dir=data_dir,
                                er_probs=(0.1, 0.9))
  adj = {dp.name: dp for dp in mixed.features.inputs}['adj'].data
  per_graph = (adj * (1 - np.eye(12))).sum(axis=(1, 2)) / (12 * 11)
  assert per_graph.min() < 0.3 and per_graph.max() > 0.7  # both drawn
  # Samplers without edge probabilities (sorting) ignore them.
  assert not data_lib.takes_edge_probability('insertion_sort')
  data_lib.load_dataset('insertion_sort', 'test', 6, 3, data_dir=data_dir,
                        er_probs=(0.5,))


def test_chunked_generation_joins_chunks_of_different_lengths(
    data_dir, monkeypatch):
  monkeypatch.setattr(data_lib, 'GENERATION_CHUNK', 3)
  fb = data_lib.generate('dfs', 8, 7, seed=5, er_probs=(0.1, 0.9))
  assert data_lib.num_graphs(fb) == 7
  (hint,) = fb.features.hints
  lengths = np.asarray(fb.features.lengths)
  assert hint.data.shape[:2] == (lengths.max(), 7)
  for dp in fb.outputs + tuple(fb.features.inputs):
    assert dp.data.shape[0] == 7
  # The chunks are different samplers: no chunk repeats another.
  pi = fb.outputs[0].data
  assert not np.array_equal(pi[:3], pi[3:6])


def test_learned_termination_stops_at_the_first_negative_logit():
  # Graph 0 stops after step 2, graph 1 after step 1, graph 2 never.
  logits = np.array([[1., -1., 1.], [-1., 2., 1.], [3., 1., 1.],
                     [-2., 1., 1.]])
  stop, stopped = step_lib.first_stop(logits)
  np.testing.assert_array_equal(stop + 1, [2, 1, 4])
  np.testing.assert_array_equal(stopped, [True, True, False])


@pytest.mark.slow
def test_nar_lt_run_is_not_told_the_steps_at_test_time(data_dir, tmp_path):
  config = tiny_config(data_dir, model='nar_lt', train_steps=2)
  results = training.train_and_evaluate(config, str(tmp_path / 'run'))
  solver = results['solver']['12']
  cap = termination.lt_step_cap(config, 12)
  assert 1 <= solver['iterations_mean'] <= solver['iterations_max'] <= cap
  # Predictions do not change when the test data's lengths are corrupted.
  models = models_lib.build_models(config, data_lib.load_dataset(
      'bfs', 'train', 8, 16, data_dir=data_dir, er_probs=config.er_probs))
  test = evaluation.load_eval_set(config, 'test', 12)
  key = jax.random.PRNGKey(0)
  params = models.initial_state.params
  preds = models.evaluate(params, key, test).preds
  lengths = np.asarray(test.features.lengths)
  corrupted = test._replace(features=test.features._replace(
      lengths=lengths[::-1] + 7))
  again = models.evaluate(params, key, corrupted).preds
  np.testing.assert_array_equal(preds['pi'].data, again['pi'].data)


def test_config_defaults_are_the_library_defaults(data_dir):
  from deq_clrs import integration
  from experiments.configs import default
  cell, deq = integration.option_defaults()
  config = default.get_config()
  assert dict(config.deq) == deq
  assert dict(config.cell) == {**cell, 'mid_size': cell['mid_size'] or 0}
  # The reference's values, where it has them.
  assert deq['jac_reg_weight'] == 1e-4 and deq['noise_per_call']
  assert deq['noise_in_eval'] and not deq['phantom_in_eval']
  assert cell['gate_bias'] == 0.0 and cell['msg_mlp'] == 'reference'


def test_paper_config_is_the_papers_protocol():
  from experiments.configs import dear_cpu
  from experiments.configs import dear_paper
  paper = dear_paper.get_config()
  assert (paper.hidden_size, paper.batch_size, paper.learning_rate,
          paper.grad_clip) == (128, 32, 3e-4, 1.0)
  assert paper.train_steps == 100 * 100_000 // 32
  assert paper.train_samples_per_size * len(paper.train_sizes) >= 100_000
  assert list(paper.train_sizes) == list(range(8, 17))
  assert (paper.val_size, paper.val_samples, paper.test_samples) == (
      16, 100, 100)
  assert paper.select_by == 'loss'
  cpu = dear_cpu.get_config()
  differ = {k for k in paper if paper[k] != cpu[k]}
  assert differ == {'train_steps', 'train_samples_per_size', 'eval_every',
                    'test_every', 'checkpoint_every', 'log_every'}


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
    (dict(model='gnn'),
     "expected one of \\['dear', 'nar', 'nar_lt', 'nar_hints'\\]"),
    (dict(model='dear', processor='mpnn'), 'needs an equilibrium processor'),
    (dict(model='nar', processor='deq_mpnn'), 'only valid with --model=dear'),
    (dict(model='nar', processor='clrs:nope'), 'unknown CLRS processor'),
    (dict(hidden_size=0), 'hidden_size must be >= 1'),
    (dict(test_sizes=()), 'test_sizes must name at least one'),
    (dict(learning_rate=0.0), 'learning_rate must be > 0'),
    (dict(train_steps=0), 'train_steps must be >= 1, got 0 .* experiments'
     '.evaluate'),
    # A negative seed failed deep in NumPy after the run had started; one of
    # 2**32 or more was cut to its low 32 bits by JAX (2**32 + 5 is seed 5).
    (dict(seed=-1), r'seed must be in \[0, 2\*\*32\), got -1'),
    (dict(seed=2**32 + 5), r'seed must be in \[0, 2\*\*32\), got 4294967301'),
    (dict(data_seed=-2), 'data_seed must be >= 0, got -2'),
    (dict(prefetch_batches=-1), 'prefetch_batches must be >= 0'),
    (dict(eval_sets='theirs'),
     "eval_sets must be one of \\['own', 'reference'\\], got 'theirs'"),
    (dict(algorithm='binary_search', eval_sets='reference'),
     "no reference recipe for 'binary_search'.*bellman_ford"),
])
def test_bad_configs_are_refused(data_dir, overrides, message):
  with pytest.raises(ValueError, match=message):
    models_lib.check_config(tiny_config(data_dir, **overrides))


def test_bad_solver_options_are_refused(data_dir):
  config = tiny_config(data_dir)
  config.deq.solver = 'newton'
  with pytest.raises(ValueError, match='solver method'):
    models_lib.check_config(config)


def _truncate(path: str) -> None:
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def _truncate_checkpoint(workdir: str, step: int) -> None:
  """Cuts every data file of a committed checkpoint in half."""
  root = os.path.join(workdir, 'checkpoints', str(step))
  for folder, _, files in os.walk(root):
    for name in files:
      if os.path.basename(folder) == 'd':
        _truncate(os.path.join(folder, name))


@pytest.mark.parametrize('truncated, resumed_from', [([4], 2),
                                                     ([2, 4], None)])
def test_unreadable_checkpoints_are_set_aside(data_dir, tmp_path, caplog,
                                              truncated, resumed_from):
  config = tiny_config(data_dir, train_steps=6, model='nar')
  workdir = str(tmp_path / 'run')

  def crash(step):
    if step == 5:
      raise Interrupted

  with pytest.raises(Interrupted):
    training.train_and_evaluate(config, workdir, hooks=[crash])
  for step in truncated:
    _truncate_checkpoint(workdir, step)
  caplog.clear()
  caplog.set_level(logging.INFO)
  results = training.train_and_evaluate(config, workdir)

  warnings = [r.getMessage() for r in caplog.records
              if r.levelname == 'WARNING' and 'is unreadable' in r.getMessage()]
  assert len(warnings) == len(truncated)
  for step, message in zip(sorted(truncated, reverse=True), warnings):
    assert os.path.join(workdir, 'checkpoints', str(step)) in message
    assert os.path.isdir(os.path.join(workdir, ckpt_lib.UNREADABLE_DIR,
                                      str(step)))
  messages = [r.getMessage() for r in caplog.records]
  if resumed_from is None:
    assert any('starting afresh' in m for m in messages)
  else:
    assert f'resumed from step {resumed_from} of 6' in messages
  assert results['train_steps'] == 6
  assert [e['step'] for e in results['history']] == [0, 2, 4, 6]
  assert ckpt_lib.Checkpointer(workdir).latest_step() == 6


def _poisoned_optimizer(from_update: int):
  """``make_optimizer`` whose updates turn NaN from update ``from_update``
  (1-based) on: the parameters after that step are NaN, and so is the loss
  of every later step."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  original = step_lib.make_optimizer

  def make(learning_rate, grad_clip):
    base = original(learning_rate, grad_clip)

    def init(params):
      return base.init(params), jnp.zeros((), jnp.int32)

    def update(updates, state, params=None):
      inner, count = state
      updates, inner = base.update(updates, inner, params)
      poison = count + 1 >= from_update
      updates = jax.tree.map(lambda u: jnp.where(poison, jnp.nan, u), updates)
      return updates, (inner, count + 1)

    return optax.GradientTransformation(init, update)

  return make


@pytest.mark.parametrize('log_every, checkpoint_every, message, newest', [
    # Parameters NaN after step 4: its checkpoint is refused, 3 stays.
    (10, 1, 'after step 4, .* parameter arrays hold NaN or inf .*'
     'the newest checkpoint \\(3\\) holds finite', 3),
    # Loss NaN from step 5 on: the log line of step 6 stops the run.
    (2, 10, 'the loss of a step in 5..6 is nan .*newest checkpoint '
     '\\(none\\)', None),
])
def test_a_diverging_run_stops_without_checkpointing_nan(
    data_dir, tmp_path, monkeypatch, log_every, checkpoint_every, message,
    newest):
  monkeypatch.setattr(step_lib, 'make_optimizer',
                      _poisoned_optimizer(from_update=4))
  config = tiny_config(data_dir, model='nar', train_steps=6,
                       log_every=log_every, eval_every=10,
                       checkpoint_every=checkpoint_every)
  workdir = str(tmp_path / 'run')
  with pytest.raises(training.DivergedError, match=message) as raised:
    training.train_and_evaluate(config, workdir)
  assert 'start a new workdir' in str(raised.value)
  assert isinstance(raised.value, training.UserError)  # one line at the CLI
  assert not os.path.exists(os.path.join(workdir, 'results.json'))
  checkpointer = ckpt_lib.Checkpointer(workdir)
  assert checkpointer.latest_step() == newest
  if newest is not None:
    state = checkpointer.restore(None)
    leaves = jax.tree_util.tree_leaves(state['params'])
    assert leaves and all(np.all(np.isfinite(leaf)) for leaf in leaves)


def test_a_checkpoint_of_another_model_is_not_set_aside(tmp_path):
  checkpointer = ckpt_lib.Checkpointer(str(tmp_path))
  checkpointer.save(1, {'w': np.zeros(3)})
  with pytest.raises(ckpt_lib.CheckpointMismatchError, match='does not fit'):
    checkpointer.restore_newest_readable({'v': np.zeros(3)})
  assert checkpointer.all_steps() == [1]  # left where it was
  checkpointer.close()


def test_a_truncated_dataset_cache_file_is_generated_again(tmp_path, caplog):
  directory = str(tmp_path / 'data')
  first = data_lib.load_dataset('bfs', 'test', 6, 4, data_dir=directory)
  (name,) = os.listdir(directory)
  path = os.path.join(directory, name)
  _truncate(path)
  caplog.clear()
  again = data_lib.load_dataset('bfs', 'test', 6, 4, data_dir=directory)
  (message,) = [r.getMessage() for r in caplog.records
                if r.levelname == 'WARNING']
  assert path in message and 'generating it again' in message
  jax.tree_util.tree_map(np.testing.assert_array_equal, first, again)
  caplog.clear()  # The regenerated file is whole again.
  data_lib.load_dataset('bfs', 'test', 6, 4, data_dir=directory)
  assert not [r for r in caplog.records if r.levelname == 'WARNING']


def _write_nan_inputs(config, split: str, size: int) -> str:
  """Rewrites a config's cached validation or test set with NaN float
  inputs, checksum and all (the data layer accepts it); returns its path."""
  dataset = evaluation.load_eval_set(config, split, size)
  inputs = [clrs.DataPoint(dp.name, dp.location, dp.type_,
                           np.full_like(dp.data, np.nan))
            if np.issubdtype(dp.data.dtype, np.floating) else dp
            for dp in dataset.features.inputs]
  dataset = dataset._replace(
      features=dataset.features._replace(inputs=tuple(inputs)))
  path = evaluation.eval_set_path(config, split, size)
  data_lib._atomic_pickle(dataset, path)
  return path


def test_a_nan_validation_loss_stops_the_run_before_it_selects(tmp_path):
  config = tiny_config(str(tmp_path / 'data'), model='nar')
  path = _write_nan_inputs(config, 'val', config.val_size)
  workdir = str(tmp_path / 'run')
  with pytest.raises(training.NonFiniteLossError) as raised:
    training.train_and_evaluate(config, workdir)
  message = str(raised.value)
  assert message.startswith('the validation loss at step 0 is nan (not '
                            'finite), so the run stopped before selecting')
  assert f'a damaged dataset cache file {path} (delete it' in message
  assert 'lower --config.learning_rate' in message
  assert isinstance(raised.value, training.UserError)  # one line at the CLI
  assert not os.path.exists(os.path.join(workdir, 'results.json'))
  assert ckpt_lib.Checkpointer(workdir).latest_step() is None
  # Deleting the file, as the message says, lets the run through.
  os.remove(path)
  results = training.train_and_evaluate(config, workdir)
  assert all(np.isfinite(e['val_loss']) for e in results['history'])


def test_a_nan_test_loss_writes_no_results(tmp_path):
  config = tiny_config(str(tmp_path / 'data'), model='nar')
  (size,) = config.test_sizes
  path = _write_nan_inputs(config, 'test', size)
  workdir = str(tmp_path / 'run')
  with pytest.raises(training.NonFiniteLossError) as raised:
    training.train_and_evaluate(config, workdir)
  message = str(raised.value)
  assert message.startswith(f'the test loss at n={size} of the parameters of '
                            f'step ')
  assert ' is nan (not finite), so no results file was written' in message
  assert path in message
  assert not os.path.exists(os.path.join(workdir, 'results.json'))
  # Scoring the saved checkpoint stops the same way, and writes nothing.
  with pytest.raises(training.NonFiniteLossError, match=f'n={size}'):
    training.evaluate_checkpoint(workdir)
  assert not os.path.exists(os.path.join(workdir, 'eval_results.json'))


def test_evaluate_refuses_what_is_not_a_finished_run(data_dir, tmp_path):
  workdir = tmp_path / 'run'
  with pytest.raises(training.UserError, match='does not exist'):
    training.evaluate_checkpoint(str(workdir))
  os.makedirs(workdir)
  with pytest.raises(training.UserError, match='holds no config.json'):
    training.evaluate_checkpoint(str(workdir))
  (workdir / 'config.json').write_text(tiny_config(data_dir).to_json())
  with pytest.raises(training.UserError, match='has no checkpoint yet: '
                     'train first'):
    training.evaluate_checkpoint(str(workdir))
  os.makedirs(workdir / 'checkpoints' / '2')
  with pytest.raises(training.UserError, match=r'no checkpoint at step 7; '
                     r'its checkpoints: \[2\]'):
    training.evaluate_checkpoint(str(workdir), step=7)


def test_a_workdir_that_cannot_be_written_is_refused(data_dir, tmp_path):
  (tmp_path / 'file').write_text('')
  with pytest.raises(training.UserError, match='cannot write to --workdir'):
    training.train_and_evaluate(tiny_config(data_dir),
                                str(tmp_path / 'file' / 'run'))
  with pytest.raises(training.UserError, match='cannot write the dataset '
                     'cache into --data_dir='):
    training.train_and_evaluate(
        tiny_config(str(tmp_path / 'file' / 'data')), str(tmp_path / 'run'))


def _aligned(data_dir, teacher, **overrides):
  config = tiny_config(data_dir, **overrides)
  config.align.weight = 0.01
  config.align.teacher = teacher
  return config


@pytest.mark.parametrize('overrides, align, message', [
    (dict(model='nar'), dict(weight=0.01, teacher='/x'),
     'needs --model=dear, got --model=nar'),
    ({}, dict(weight=0.01, teacher=''), 'needs align.teacher'),
    ({}, dict(weight=-1.0, teacher=''), 'align.weight must be >= 0'),
])
def test_bad_alignment_settings_are_refused(data_dir, overrides, align,
                                            message):
  config = tiny_config(data_dir, **overrides)
  config.align.update(align)
  with pytest.raises(ValueError, match=message):
    models_lib.check_config(config)
  config = tiny_config(data_dir)
  config.align.update(weight=0.01, teacher='/x')
  config.deq.backward = 'implicit'
  with pytest.raises(ValueError, match='needs backward=phantom'):
    models_lib.check_config(config)


@pytest.mark.parametrize('teacher_overrides, message', [
    (dict(model='dear'), "its model is 'dear', this run needs 'nar'"),
    (dict(model='nar', algorithm='dfs'), "its algorithm is 'dfs'"),
    (dict(model='nar', hidden_size=32), 'its hidden_size is 32'),
])
def test_an_unfit_teacher_is_refused_in_one_line(data_dir, tmp_path,
                                                 teacher_overrides, message):
  teacher = tmp_path / 'teacher'
  os.makedirs(teacher)
  (teacher / 'config.json').write_text(
      tiny_config(data_dir, **teacher_overrides).to_json())
  with pytest.raises(training.UserError, match=message):
    training.train_and_evaluate(_aligned(data_dir, str(teacher)),
                                str(tmp_path / 'run'))
  with pytest.raises(training.UserError, match='does not exist'):
    training.train_and_evaluate(_aligned(data_dir, str(tmp_path / 'none')),
                                str(tmp_path / 'run2'))


def test_an_unfinished_teacher_is_refused_in_one_line(data_dir, tmp_path):
  teacher = tmp_path / 'teacher'
  os.makedirs(teacher)
  (teacher / 'config.json').write_text(
      tiny_config(data_dir, model='nar').to_json())
  with pytest.raises(training.UserError,
                     match=f'align.teacher={teacher} has not finished'):
    training.train_and_evaluate(_aligned(data_dir, str(teacher)),
                                str(tmp_path / 'run'))
  (teacher / 'results.json').write_text('{}')
  with pytest.raises(training.UserError,
                     match=f'align.teacher={teacher}: no checkpoint .* '
                           f'\\(train the nar run first\\)'):
    training.train_and_evaluate(_aligned(data_dir, str(teacher)),
                                str(tmp_path / 'run'))


def test_a_run_from_before_the_alignment_settings_resumes(data_dir, tmp_path):
  # config.json of a run made before config.align existed.
  saved = json.loads(tiny_config(data_dir, train_steps=2).to_json())
  del saved['align']
  workdir = tmp_path / 'run'
  os.makedirs(workdir)
  (workdir / 'config.json').write_text(json.dumps(saved))
  results = training.train_and_evaluate(
      tiny_config(data_dir, train_steps=2), str(workdir))
  assert results['train_steps'] == 2
  # A run that asks for the regulariser is a different run.
  with pytest.raises(ValueError, match="different config \\(keys \\['align'"):
    training.train_and_evaluate(_aligned(data_dir, '/x', train_steps=4),
                                str(workdir))


@pytest.mark.slow
def test_dear_trains_with_a_nar_teacher(data_dir, tmp_path):
  teacher = str(tmp_path / 'nar')
  training.train_and_evaluate(tiny_config(data_dir, model='nar'), teacher)
  plain = training.train_and_evaluate(tiny_config(data_dir),
                                      str(tmp_path / 'plain'))
  workdir = str(tmp_path / 'aligned')
  aligned = training.train_and_evaluate(_aligned(data_dir, teacher), workdir)
  assert aligned['config']['align'] == {'weight': 0.01, 'teacher': teacher}
  # The regulariser joins the training loss (not the validation loss).
  assert aligned['final_train_loss'] != plain['final_train_loss']
  assert np.isfinite(aligned['final_train_loss'])
  assert 0.0 <= aligned['test_scores']['12']['score'] <= 1.0
  # Scoring it again needs no teacher.
  evaluated = training.evaluate_checkpoint(workdir)
  assert (evaluated['test_scores']['12']['score']
          == aligned['test_scores']['12']['score'])


@pytest.mark.slow
def test_prefetching_changes_no_result(data_dir, tmp_path):
  """Batches are a function of the step: made ahead on the background
  thread or in the loop, a run learns and scores the same."""
  runs = {}
  for depth in (0, 3):
    config = tiny_config(data_dir, prefetch_batches=depth)
    runs[depth] = training.train_and_evaluate(config,
                                              str(tmp_path / str(depth)))
  curve = lambda r: [(h['step'], h['train_loss'], h['val_loss'])
                     for h in r['history']]
  assert curve(runs[0]) == curve(runs[3])
  for key in ('test_scores', 'test_scores_per_graph', 'test_loss', 'solver',
              'final_train_loss', 'best_step'):
    assert runs[0][key] == runs[3][key], key
