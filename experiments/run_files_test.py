"""experiments.run_files finds results files and tells runs apart."""

import json

from experiments import run_files


def _run(seed=0, **config):
  return {'algorithm': 'bfs', 'model': 'dear', 'seed': seed,
          'config': {'tag': '', 'seed': seed, 'train_steps': 100,
                     'data_dir': '/data', **config},
          'val_score': 0.9, 'test_scores': {'64': {'score': 0.8}}}


def _write(path, run):
  path.parent.mkdir(parents=True, exist_ok=True)
  path.write_text(json.dumps(run))


def test_config_key_ignores_bookkeeping_and_fills_added_settings():
  base = run_files.config_key(_run())
  assert run_files.config_key(_run(seed=3, data_dir='/other')) == base
  assert run_files.config_key(_run(train_steps=200)) != base
  # A run made before the alignment regulariser existed has it switched off.
  aligned = _run(align={'weight': 0.0, 'teacher': ''})
  assert run_files.config_key(aligned) == base
  assert run_files.config_key(
      _run(align={'weight': 0.01, 'teacher': 'x'})) != base
  # And one made before return_best existed returned its last iterate.
  before = run_files.config_key(_run(deq={'rel_tol': 0.1}))
  assert before == run_files.config_key(
      _run(deq={'rel_tol': 0.1, 'return_best': False}))
  assert before != run_files.config_key(
      _run(deq={'rel_tol': 0.1, 'return_best': True}))


def test_copy_names_tell_configs_and_tags_apart():
  names = {run_files.copy_name(r) for r in (
      _run(), _run(seed=1), _run(train_steps=200), _run(tag='tol0.01'))}
  assert len(names) == 4
  assert run_files.copy_name(_run(tag='tol0.01')).startswith(
      'bfs.dear.tol0.01.seed0.')


def test_extends_needs_everything_old_holds_unchanged():
  old = {'a': 1, 'b': {'x': 2}}
  assert run_files.extends({'a': 1, 'b': {'x': 2, 'y': 3}, 'c': 4}, old)
  assert not run_files.extends({'a': 1, 'b': {'x': 5}}, old)
  assert not run_files.extends({'a': 1}, old)


def test_of_two_files_of_one_run_the_fuller_is_kept(tmp_path):
  # 'a_copy' is met first; the run in 'b_run' holds the same and a 128-node
  # score more, so it is kept. Two files that disagree keep the first.
  fuller = _run()
  fuller['test_scores']['128'] = {'score': 0.5}
  _write(tmp_path / 'a_copy' / 'x.results.json', _run())
  _write(tmp_path / 'b_run' / 'results.json', fuller)
  _write(tmp_path / 'c_other' / 'results.json',
         {**_run(), 'val_score': 0.1})
  skipped = []
  (run,) = run_files.load_runs(str(tmp_path), skipped)
  assert run['_path'] == str(tmp_path / 'b_run' / 'results.json')
  assert run['test_scores']['128'] == {'score': 0.5}
  assert [path for path, _ in skipped] == [
      str(tmp_path / 'a_copy' / 'x.results.json'),
      str(tmp_path / 'c_other' / 'results.json')]


def test_evaluations_scored_unlike_the_run_are_not_merged(tmp_path):
  # An eval_results.json scored with other solver settings, the last
  # parameters or nar_lt's true-length read is a diagnostic: merged, it
  # would have shown in the table as the run's score at that size.
  base = {'test_scores': {'128': {'score': 0.3}}}
  cases = {'same': {'params': 'best', 'solver_overrides': {}, **base},
           'loose': {'params': 'best', 'solver_overrides': {'rel_tol': 0.3},
                     **base},
           'last': {'params': 'last', **base},
           'oracle': {'params': 'best', 'read_at': 'true_length', **base}}
  for seed, (name, evaluation) in enumerate(cases.items()):
    _write(tmp_path / name / 'results.json', _run(seed=seed))
    _write(tmp_path / name / 'eval_results.json', evaluation)
  skipped = []
  runs = {r['_path'].split('/')[-2]: r
          for r in run_files.load_runs(str(tmp_path), skipped)}
  assert runs['same']['test_scores']['128'] == {'score': 0.3}
  for name in ('loose', 'last', 'oracle'):
    assert '128' not in runs[name]['test_scores'], name
  reasons = {path.split('/')[-2]: reason for path, reason in skipped}
  assert reasons == {
      'loose': "not merged: scored with solver settings {'rel_tol': 0.3}, "
               'not as the run itself scores',
      'last': 'not merged: scored with the last parameters, not as the run '
              'itself scores',
      'oracle': "not merged: scored with predictions read at 'true_length', "
                'not as the run itself scores'}


def test_load_folder_keeps_objects_with_the_required_keys(tmp_path):
  (tmp_path / 'a.json').write_text(json.dumps({'x': 1, 'y': 2}))
  (tmp_path / 'b.json').write_text(json.dumps({'x': 1}))  # no y
  (tmp_path / 'c.json').write_text('[1, 2]')  # not an object
  (tmp_path / 'd.json').write_text('{')  # unreadable
  (tmp_path / 'e.txt').write_text(json.dumps({'x': 1, 'y': 2}))  # not .json
  (tmp_path / 'sub').mkdir()
  (tmp_path / 'sub' / 'f.json').write_text(json.dumps({'x': 1, 'y': 2}))
  found, skipped = run_files.load_folder(str(tmp_path), ('x', 'y'))
  assert found == [{'x': 1, 'y': 2}]
  assert skipped == ['b.json', 'c.json', 'd.json']
