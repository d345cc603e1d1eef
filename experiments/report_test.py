"""experiments.report turns results.json files into a table and plots."""

import json
import os

from experiments import report
from experiments import report_gaps
from experiments import run_files


def fake_run(model, seed, score, solver, train_steps=200):
  return {
      'algorithm': 'bfs', 'model': model, 'seed': seed,
      'config': {'val_size': 16, 'tag': '', 'seed': seed,
                 'train_steps': train_steps, 'data_dir': f'/data{seed}'},
      'val_score': 0.9,
      'test_scores': {'64': {'score': score, 'pi': score}},
      'gt_steps_mean': {'64': 3.5},
      'solver': {'64': solver} if solver else None,
      'seconds_per_sample': {'64': 0.01}, 'train_seconds': 60.0,
      'train_steps': 200,
  }


def _write_runs(root, runs):
  """One run folder per ``{name: results}`` entry (:func:`write_run`)."""
  for name, run in runs.items():
    write_run(root / name, run)


def _write_eval_128(folder, score, solver=None):
  """An evaluation-only result at 128 nodes beside the run in ``folder``."""
  with open(folder / 'eval_results.json', 'w') as f:
    json.dump({'params': 'best', 'test_scores': {'128': {'score': score}},
               'gt_steps_mean': {'128': 4.0},
               'seconds_per_sample': {'128': 0.02},
               'solver': {'128': solver} if solver else None}, f)


def test_report_writes_table_and_plots(tmp_path):
  runs = tmp_path / 'runs'
  solver = {'iterations_mean': 4.0, 'iterations_max': 6,
            'converged_fraction': 1.0}
  _write_runs(runs, {'d0': fake_run('dear', 0, 0.8, solver),
                     'd1': fake_run('dear', 1, 0.6, solver),
                     'n0': fake_run('nar', 0, 0.5, None)})
  # An evaluation-only result beside a run adds a test size.
  _write_eval_128(runs / 'n0', 0.25)
  out = tmp_path / 'out'
  report.write_report(str(runs), str(out))
  table = (out / 'table.md').read_text().splitlines()
  # The copies alone (the 128-node score of n0 merged in) rebuild it.
  again = tmp_path / 'again'
  report.write_report(str(out / 'runs'), str(again))
  assert (again / 'table.md').read_text().splitlines() == table
  assert sorted(os.listdir(again / 'runs')) == sorted(
      os.listdir(out / 'runs'))
  assert 'test (64)' in table[0] and 'test (128)' in table[0]
  dear = next(line for line in table if '| dear |' in line)
  nar = next(line for line in table if '| nar |' in line)
  assert '0.700 ± 0.100' in dear  # mean ± std over the two seeds
  assert '4.0 / 6' in dear
  assert '0.250' in nar and '0.500' in nar
  # A test size scored for one of two seeds says so instead of passing
  # for the row's mean.
  _write_eval_128(runs / 'd0', 0.3, {'iterations_mean': 5.0,
                                      'iterations_max': 8,
                                      'converged_fraction': 1.0})
  partial = tmp_path / 'partial'
  report.write_report(str(runs), str(partial))
  dear = next(line for line in (partial / 'table.md').read_text()
              .splitlines() if '| dear |' in line).split(' | ')
  assert dear[4:6] == ['0.700 ± 0.100', '0.300 (seed 0)']
  assert dear[8:10] == ['4.0 / 6', '5.0 / 8 (seed 0)']
  # Two seeds of three name their seeds as gaps.md does ('seeds 0, 2'), so
  # that a cell reads the same in both files.
  write_run(runs / 'd2', fake_run('dear', 2, 0.7, solver))
  _write_eval_128(runs / 'd2', 0.5)
  three = tmp_path / 'three'
  report.write_report(str(runs), str(three))
  dear = next(line for line in (three / 'table.md').read_text()
              .splitlines() if '| dear |' in line).split(' | ')
  assert dear[5] == '0.400 ± 0.100 (seeds 0, 2)'
  assert '| 128 | bfs | dear | 0.400 ± 0.100 (seeds 0, 2) |' in (
      three / 'gaps.md').read_text()
  for name in ('accuracy_vs_size.png', 'iterations_vs_steps.png'):
    assert (out / name).stat().st_size > 1000
  assert len(os.listdir(out / 'runs')) == 3


def write_run(folder, run):
  """A run folder: ``results.json`` beside ``config.json``."""
  os.makedirs(folder, exist_ok=True)
  with open(folder / 'results.json', 'w') as f:
    json.dump(run, f)
  with open(folder / 'config.json', 'w') as f:
    json.dump(run['config'], f)


SOLVER = {'iterations_mean': 4.0, 'iterations_max': 6,
          'converged_fraction': 1.0}


def _write_runs_of_two_configs(runs):
  """Five runs (three seeds of one dear config, one of another, a nar_lt)
  and the same run reached again: a link, a loop, a copy; one unreadable."""
  write_run(runs / 'd0', fake_run('dear', 0, 0.8, SOLVER))
  write_run(runs / 'd1', fake_run('dear', 1, 0.6, SOLVER))
  write_run(runs / 'short', fake_run('dear', 0, 0.1, SOLVER, train_steps=5))
  # A run made after config.align existed, with it off, is another seed of
  # the runs made before.
  later = fake_run('dear', 2, 0.7, SOLVER)
  later['config']['align'] = {'weight': 0.0, 'teacher': ''}
  later['code_version'] = {'commit': 'abcdef0123', 'dirty': True}
  write_run(runs / 'd2', later)
  # Today's fields (learning curve, selection) and the nar_lt model.
  lt = fake_run('nar_lt', 0, 0.4, {'iterations_mean': 3.0,
                                   'iterations_max': 5,
                                   'converged_fraction': 0.5})
  lt.update(history=[{'step': 0, 'val_loss': 1.0, 'val_score': 0.2}],
            select_by='loss', val_loss=0.5)
  write_run(runs / 'lt0', lt)
  # The same run reached again: through a link, a loop, a copy elsewhere.
  os.symlink(runs / 'd0', runs / 'link_to_d0')
  os.symlink(runs, runs / 'd1' / 'loop')
  write_run(runs / 'zz_copy_of_d0', fake_run('dear', 0, 0.8, SOLVER))
  os.makedirs(runs / 'broken')
  (runs / 'broken' / 'results.json').write_text('{"algorithm": ')
  (runs / 'broken' / 'config.json').write_text('{}')


def test_report_pools_only_seeds_of_one_config(tmp_path):
  runs = tmp_path / 'runs'
  _write_runs_of_two_configs(runs)
  out = tmp_path / 'out'
  printed = []
  gathered = report.write_report(str(runs), str(out), log=printed.append,
                                 list_skipped=True)
  assert len(gathered) == 5
  table = (out / 'table.md').read_text()
  rows = {line.split(' | ')[1]: line for line in table.splitlines()[2:]
          if line.startswith('|')}
  assert report.STD_NOTE in table  # the ± is the population std
  assert set(rows) == {'dear (train_steps=200)', 'dear (train_steps=5)',
                       'nar_lt'}
  assert '| 0,1,2 |' in rows['dear (train_steps=200)']
  # The row says which code made its runs (two without a record).
  assert rows['dear (train_steps=200)'].endswith('| ?,abcdef0+dirty |')
  assert '0.700 ± 0.082' in rows['dear (train_steps=200)']
  assert '| 0 | 0.900 | 0.100 |' in rows['dear (train_steps=5)']
  assert '3.0 / 5' in rows['nar_lt']
  assert printed.pop(0) == (
      'skipped 3: 1 reached twice through links, 1 unreadable, 1 another '
      'file of a run already read')
  reasons = dict(line.split(': ', 1) for line in printed)
  assert reasons[f'skipped {runs / "link_to_d0" / "results.json"}'] == (
      f'the same file as {runs / "d0" / "results.json"}')
  assert reasons[f'skipped {runs / "zz_copy_of_d0" / "results.json"}'] == (
      f'the same config and seed as {runs / "d0" / "results.json"}')
  assert reasons[f'skipped {runs / "broken" / "results.json"}'].startswith(
      'unreadable')
  assert len(printed) == 3  # the loop is searched once, silently
  assert len(os.listdir(out / 'runs')) == 5


def test_a_second_report_never_overwrites_a_copy_that_now_differs(tmp_path):
  runs, out = tmp_path / 'runs', tmp_path / 'out'
  _write_runs_of_two_configs(runs)
  report.write_report(str(runs), str(out), log=lambda line: None)
  copies = sorted(os.listdir(out / 'runs'))
  printed = []
  write_run(runs / 'd1', fake_run('dear', 1, 0.2, SOLVER))
  report.write_report(str(runs), str(out), log=printed.append)
  assert sorted(os.listdir(out / 'runs')) == copies
  (note,) = [line for line in printed if line.startswith('not overwriting')]
  assert f'differs from {runs / "d1" / "results.json"}' in note
  assert '0.567 ± 0.262' in (out / 'table.md').read_text()


def test_report_brings_a_copy_up_to_date_when_its_run_gains_a_test_size(
    tmp_path):
  # A run scored at 128 nodes after its copy was written: the copy used to
  # stay as it was (with a line in the log), so the table showed a score
  # that its copies could not rebuild.
  runs = tmp_path / 'runs'
  solver = {'iterations_mean': 4.0, 'iterations_max': 6,
            'converged_fraction': 1.0}
  write_run(runs / 'd0', fake_run('dear', 0, 0.8, solver))
  out = tmp_path / 'out'
  report.write_report(str(runs), str(out))
  with open(runs / 'd0' / 'eval_results.json', 'w') as f:
    json.dump({'params': 'best', 'test_scores': {'128': {'score': 0.3}},
               'gt_steps_mean': {'128': 4.0},
               'seconds_per_sample': {'128': 0.02},
               'solver': {'128': solver}}, f)
  printed = []
  report.write_report(str(runs), str(out), log=printed.append)
  (copy,) = os.listdir(out / 'runs')
  assert printed == [f'updated {out / "runs" / copy}: '
                     f'{runs / "d0" / "results.json"} keeps all it held and '
                     'adds more (test sizes scored since)']
  with open(out / 'runs' / copy) as f:
    assert json.load(f)['test_scores']['128'] == {'score': 0.3}
  again = tmp_path / 'again'
  report.write_report(str(out / 'runs'), str(again))
  assert (again / 'table.md').read_text() == (out / 'table.md').read_text()
  assert '0.300' in (again / 'table.md').read_text()


def test_a_run_scored_since_its_copy_wins_over_the_copy_met_first(tmp_path):
  # The table is made from a folder of links in which the report's own
  # copies ('copies') sort before the live runs ('live'). A run scored at
  # 128 nodes after its copy was written used to be skipped as a duplicate
  # of that copy, so its new score reached neither the table nor the copy.
  view, out = tmp_path / 'view', tmp_path / 'out'
  live = tmp_path / 'live'
  write_run(live / 'd0', fake_run('dear', 0, 0.8, None))
  view.mkdir()
  report.write_report(str(live), str(out))
  (copy,) = os.listdir(out / 'runs')
  os.symlink(out / 'runs' / copy, view / copy)
  os.symlink(live, view / 'live')
  _write_eval_128(live / 'd0', 0.3)
  printed = []
  runs = report.write_report(str(view), str(out), log=printed.append,
                             list_skipped=True)
  assert [r['_path'] for r in runs] == [str(view / 'live' / 'd0' /
                                            'results.json')]
  assert printed[1] == (
      f'skipped {view / copy}: the same config and seed as '
      f'{view / "live" / "d0" / "results.json"}, which holds all it does '
      'and more')
  assert '0.300' in (out / 'table.md').read_text()
  with open(out / 'runs' / copy) as f:
    assert json.load(f)['test_scores']['128'] == {'score': 0.3}
  # Once the copy has caught up the two agree, and the first one met (the
  # copy) is kept, as before.
  printed = []
  (again,) = report.write_report(str(view), str(out), log=printed.append,
                                 list_skipped=True)
  assert again['_path'] == str(view / copy)
  assert printed[1:] == [f'skipped {view / "live" / "d0" / "results.json"}: '
                         f'the same config and seed as {view / copy}']


def test_report_keeps_an_unreadable_copy_and_says_so(tmp_path):
  # Comparing a copy with its run must not crash the report when the copy
  # is not JSON (cut short by a kill): it is left alone, as before.
  runs = tmp_path / 'runs'
  write_run(runs / 'd0', fake_run('dear', 0, 0.8, None))
  out = tmp_path / 'out'
  report.write_report(str(runs), str(out))
  (copy,) = os.listdir(out / 'runs')
  (out / 'runs' / copy).write_text('{"algorithm": ')
  printed = []
  report.write_report(str(runs), str(out), log=printed.append)
  (note,) = printed
  assert note.startswith(f'not overwriting {out / "runs" / copy}')
  assert (out / 'runs' / copy).read_text() == '{"algorithm": '


def test_report_reads_only_run_folders_and_says_what_it_skipped(tmp_path):
  # A broad folder (as --runs=/tmp was): a run folder, a results.json
  # without its config.json, report copies in a folder below, and a
  # results/ folder of this project reached through a link.
  broad = tmp_path / 'broad'
  write_run(broad / 'mine' / 'd0', fake_run('dear', 0, 0.8, None))
  (broad / 'loose').mkdir(parents=True)
  (broad / 'loose' / 'results.json').write_text(
      json.dumps(fake_run('nar', 0, 0.5, None)))
  other = broad / 'other_checkout' / 'results' / 'runs'
  other.mkdir(parents=True)
  for seed in (0, 1):
    (other / f'bfs.nar.seed{seed}.abc.results.json').write_text(
        json.dumps(fake_run('nar', seed, 0.5, None)))
  os.symlink(run_files.PROJECT_RESULTS, broad / 'project_results')
  printed = []
  runs = report.write_report(str(broad), str(tmp_path / 'out'),
                             log=printed.append)
  assert [r['_path'] for r in runs] == [
      str(broad / 'mine' / 'd0' / 'results.json')]
  assert printed == [
      'skipped 4: 1 without config.json beside them, 2 report copies '
      "below the folder given, 1 the project's own results/ "
      '(--list_skipped names them)']
  # Copies are read from the folder given itself, and the project's own
  # results from a folder in it.
  assert len(report.write_report(str(other), str(tmp_path / 'o2'),
                                 log=printed.append)) == 2
  skipped = []
  assert run_files.load_runs(str(broad / 'project_results' / 'dear_cpu' /
                                 'runs'), skipped, run_folders_only=True)
  assert not skipped


def test_the_code_column_names_every_commit_that_trained_a_run():
  started = {'commit': '1111111aaaa', 'dirty': False}
  finished = {'commit': '2222222bbbb', 'dirty': False}
  resumed = {'code_versions': [{'from_step': 0, **started},
                               {'from_step': 3500, **finished}],
             'code_version': finished}
  assert report.code_label([resumed]) == '1111111,2222222'
  # Begun before segments were recorded: its first steps' code is unknown.
  late = {'code_versions': [{'from_step': 3500, **finished}],
          'code_version': finished}
  assert report.code_label([late]) == '?,2222222'
  assert report.code_label([{'code_version': finished}]) == '2222222'
  assert report.code_label([{}]) == '?'


def _gap_rows(text, header):
  """The body rows (cells stripped) of gaps.md's table whose header line, or
  the heading above it, is ``header``."""
  lines = text.splitlines()
  start = lines.index(header)
  while not lines[start].startswith('|'):
    start += 1
  start += 2
  rows = []
  for line in lines[start:]:
    if not line.startswith('|'):
      break
    rows.append([c.strip() for c in line.strip('|').split('|')])
  return rows


EVERY = '## Every row − nar'


def test_gaps_compare_each_row_with_nar_and_name_the_seeds(tmp_path):
  solver = {'iterations_mean': 4.0, 'iterations_max': 6,
            'converged_fraction': 1.0}
  tagged = fake_run('dear', 0, 0.45, solver)
  tagged['config']['tag'] = 'tol0.01'
  lonely = fake_run('dear', 0, 0.9, solver)
  lonely['algorithm'] = 'dfs'  # no nar row: no line
  runs = tmp_path / 'runs'
  _write_runs(runs, {'d0': fake_run('dear', 0, 0.8, solver),
                     'd1': fake_run('dear', 1, 0.6, solver),
                     'n0': fake_run('nar', 0, 0.5, None),
                     'n2': fake_run('nar', 2, 0.7, None),
                     't0': tagged, 'x0': lonely})
  report.write_report(str(runs), str(tmp_path / 'out'))
  text = (tmp_path / 'out' / 'gaps.md').read_text()
  assert 'a positive difference means the row (DEAR) is ahead' in text
  assert '*population* standard deviation' in text
  rows = _gap_rows(text, EVERY)
  # dear's mean 0.7 less nar's 0.6; sample variances 0.02 and 0.02, so
  # the standard error is 0.141 with 2 degrees of freedom (t = 4.303):
  # 0.1 +- 0.608. On seed 0, the one both have: 0.8 - 0.5.
  assert rows == [
      ['64', 'bfs', 'dear', '0.700 ± 0.100 (seeds 0, 1)',
       '0.600 ± 0.100 (seeds 0, 2)', '+0.100', '[-0.508, +0.708]',
       'not resolved at 2 seeds', 'Welch (no per-graph scores)',
       '+0.300 (seed 0)'],
      ['64', 'bfs', 'dear:tol0.01', '0.450 (seed 0)',
       '0.600 ± 0.100 (seeds 0, 2)', '-0.150', '-', '1 seed: no interval',
       'Welch (no per-graph scores)', '-0.050 (seed 0)'],
  ]
  (main,) = _gap_rows(text, report_gaps.main_comparison([])[0])
  assert main[:4] == ['bfs', '0.700 ± 0.100 (seeds 0, 1)',
                      '0.600 ± 0.100 (seeds 0, 2)', '+0.100']
  assert main[-1] == 'not resolved after Holm'


def test_gaps_without_shared_seeds_or_spread_say_so(tmp_path):
  runs = tmp_path / 'runs'
  _write_runs(runs, {'d1': fake_run('dear', 1, 0.8, None),
                     'n0': fake_run('nar', 0, 0.5, None)})
  report.write_report(str(runs), str(tmp_path / 'out'))
  (row,) = _gap_rows((tmp_path / 'out' / 'gaps.md').read_text(), EVERY)
  assert row == ['64', 'bfs', 'dear', '0.800 (seed 1)', '0.500 (seed 0)',
                 '+0.300', '-', '1 seed: no interval',
                 'Welch (no per-graph scores)', '-']


def _scored(model, seed, algorithm, scores):
  """A run with per-graph test scores at 64 nodes (and their mean)."""
  run = fake_run(model, seed, float(sum(scores) / len(scores)), None)
  run['algorithm'] = algorithm
  run['test_scores_per_graph'] = {'64': scores}
  return run


def test_gaps_verdicts_follow_the_intervals_and_holm(tmp_path):
  # Three algorithms, three seeds each: on 'clear' DEAR leads on every
  # seed by far; on 'close' the seeds overlap; on 'mixed' only one side
  # stored per-graph scores, so Welch's interval is used and said so.
  runs = {}
  for seed in range(3):
    runs[f'cd{seed}'] = _scored('dear', seed, 'clear',
                                [0.9 + 0.01 * seed] * 4)
    runs[f'cn{seed}'] = _scored('nar', seed, 'clear', [0.5 + 0.01 * seed] * 4)
    runs[f'od{seed}'] = _scored('dear', seed, 'close',
                                [0.5, 0.7, 0.6, 0.4 + 0.1 * seed])
    runs[f'on{seed}'] = _scored('nar', seed, 'close',
                                [0.6, 0.5, 0.6, 0.45 + 0.1 * seed])
    mixed = fake_run('dear', seed, 0.3 + 0.02 * seed, None)
    mixed['algorithm'] = 'mixed'
    runs[f'md{seed}'] = mixed
    runs[f'mn{seed}'] = _scored('nar', seed, 'mixed', [0.5 + 0.03 * seed] * 4)
  _write_runs(tmp_path / 'runs', runs)
  report.write_report(str(tmp_path / 'runs'), str(tmp_path / 'out'))
  text = (tmp_path / 'out' / 'gaps.md').read_text()
  assert report_gaps.BOOTSTRAP_NOTE in text
  every = {row[1]: row for row in _gap_rows(text, EVERY)}
  assert every['clear'][5:9] == [
      '+0.400', '[+0.387, +0.413]', 'ahead', 'paired bootstrap']
  assert every['close'][7:9] == ['not resolved at 3 seeds',
                                 'paired bootstrap']
  assert every['mixed'][5] == '-0.210'
  assert every['mixed'][7:9] == ['behind', 'Welch (no per-graph scores)']
  main = {row[0]: row for row in _gap_rows(
      text, report_gaps.main_comparison([])[0])}
  assert main['clear'][-1] == 'ahead'  # p ~ 1e-4, times 3 still < 0.05
  assert main['close'][-1] == 'not resolved after Holm'
  assert 'differences are resolved' in text


def test_times_measured_on_shared_cores_are_marked_with_their_seeds(tmp_path):
  runs = tmp_path / 'runs'
  alone, shared = fake_run('nar', 0, 0.5, None), fake_run('nar', 1, 0.5, None)
  alone['load'] = {'64': {'load_1min': 2.1, 'cpus': 2}}  # two pinned jobs
  shared['load'] = {'64': {'load_1min': 4.2, 'cpus': 2}}
  old = fake_run('dear', 0, 0.8, {'iterations_mean': 4.0, 'iterations_max': 6,
                                  'converged_fraction': 1.0})  # no load
  _write_runs(runs, {'n0': alone, 'n1': shared, 'd0': old})
  # A shared-core timing of a size scored later is marked too.
  with open(runs / 'n0' / 'eval_results.json', 'w') as f:
    json.dump({'params': 'best', 'test_scores': {'128': {'score': 0.3}},
               'gt_steps_mean': {'128': 4.0},
               'seconds_per_sample': {'128': 0.02},
               'load': {'128': {'load_1min': 3.0, 'cpus': 2}}}, f)
  report.write_report(str(runs), str(tmp_path / 'out'))
  text = (tmp_path / 'out' / 'table.md').read_text()
  nar = next(line for line in text.splitlines() if '| nar |' in line)
  assert '10.00 ± 0.00 (cores shared: seed 1) |' in nar
  assert '20.00 (seed 0) (cores shared: seed 0) |' in nar
  dear = next(line for line in text.splitlines() if '| dear |' in line)
  assert 'cores shared' not in dear
  assert text.rstrip().endswith(report.SHARED_NOTE)
  # A table with no shared-core timing carries no note.
  assert report.SHARED_NOTE not in report.markdown_table([old])
  assert report.TRAIN_SHARED_NOTE not in text
  # A job pinned to one core that shared it while the other core idled
  # reads load 2.0 on 2 CPUs; the share others took of its CPU marks it.
  shared['load'] = {'64': {'load_1min': 2.0, 'cpus': 2, 'others_share': 0.5,
                           'usable_cpus': 1}}
  alone['load'] = {'64': {'load_1min': 2.0, 'cpus': 2, 'others_share': 0.01,
                          'usable_cpus': 1}}
  nar = next(line for line in report.markdown_table([alone, shared, old])
             .splitlines() if '| nar |' in line)
  assert '10.00 ± 0.00 (cores shared: seed 1) |' in nar


def test_training_on_shared_cores_is_marked_with_its_validations(tmp_path):
  def history(*loads):
    return [{'step': 2 * i, 'val_score': 0.5,
             'load': None if load is None else {'load_1min': load, 'cpus': 2}}
            for i, load in enumerate(loads)]
  alone, shared = fake_run('nar', 0, 0.5, None), fake_run('nar', 1, 0.5, None)
  alone['history'] = history(2.2, 2.4, None)  # two pinned jobs: not shared
  shared['history'] = history(2.0, 3.1, 4.0)
  old = fake_run('nar', 2, 0.5, None)  # trained before loads were recorded
  old['history'] = [{'step': 0, 'val_score': 0.5}]
  runs = tmp_path / 'runs'
  _write_runs(runs, {'n0': alone, 'n1': shared, 'n2': old})
  report.write_report(str(runs), str(tmp_path / 'out'))
  text = (tmp_path / 'out' / 'table.md').read_text()
  nar = next(line for line in text.splitlines() if '| nar |' in line)
  # Of the validations that recorded a load, two of three were shared.
  assert '| 60 ± 0 (cores shared: seed 1 at 2 of 3 validations) |' in nar
  assert 'seed 0 at' not in nar and 'seed 2 at' not in nar
  assert text.rstrip().endswith(report.TRAIN_SHARED_NOTE)
  assert report.SHARED_NOTE not in text  # ms/graph were timed alone
  shared['history'] = history(2.0, 2.1)
  assert 'cores shared' not in report.markdown_table([alone, shared, old])
  # Load 2.0 on 2 CPUs, but other processes used half of its pinned core.
  shared['history'][1]['load'].update(others_share=0.5, usable_cpus=1)
  assert ('(cores shared: seed 1 at 1 of 2 validations)'
          in report.markdown_table([alone, shared, old]))
