"""Gathers results.json files into two markdown tables and three plots.

  python -m experiments.report --runs=workdir_runs --out=results

Reads every run folder under ``--runs`` (a ``results.json`` beside a
``config.json``, with, beside them, an ``eval_results.json`` written by
``experiments.evaluate``, whose extra test sizes are merged in) and the
report copies directly in ``--runs`` (``<out>/runs``), never the project's
own ``results/`` unless ``--runs`` is in it; says in one line how many
files it left out and why (``--list_skipped`` names them); then writes into
``--out``:

* ``table.md``: per algorithm and model, the CLRS score at every test size
  (mean +- std over seeds, numpy's population std; a statistic that only
  some of the row's seeds have names them, e.g. ``0.400 (seed 0)``), the
  validation score, solver iterations against
  the true number of steps, inference time (marked ``cores shared: seed
  ...`` for seeds timed while other jobs ran beside them; see
  ``provenance.shared_cores``), training time (marked likewise, with how
  many of the seed's validations saw shared cores) and the commits that
  made the runs;
* ``gaps.md``: per test size, each row of an algorithm less its ``nar`` row
  (and ``dear`` less ``nar_lt``): the difference of the means, its 95%
  interval (Welch's over seeds, or a paired bootstrap over seeds and test
  graphs where both rows stored per-graph scores: :mod:`experiments.intervals`),
  the verdict that follows the interval, and for DEAR against NAR at 64
  nodes the verdict after Holm's correction over the algorithms; a positive
  difference means the row is ahead (:mod:`experiments.report_gaps`);
* ``accuracy_vs_size.png``: score against graph size (16 = validation set);
* ``iterations_vs_steps.png``: DEAR's solver iterations per graph against
  the true algorithm's number of steps;
* ``learning_curves.png``, for runs with a history: score against training
  steps (the figures: :mod:`experiments.report_figures`);
* ``runs/``: a copy of each gathered run, ``<algorithm>.<model>.seed<seed>.
  <config hash>.results.json``: its results.json with the extra test sizes
  of its eval_results.json merged in (updated when the run only adds test
  sizes, never overwritten otherwise), so that ``--runs=<out>/runs``
  rebuilds the same table from the copies alone.

Runs are pooled as seeds of one row only when their configs agree on all
but the seed and bookkeeping fields (``run_files.group``); results files
reached twice through symbolic links are read once; what is left out is
printed with the reason.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from absl import app
from absl import flags

from deq_clrs.training import provenance
from experiments import cli
from experiments import report_figures
from experiments import report_gaps
from experiments import run_files
from experiments import tables

_RUNS = flags.DEFINE_string('runs', 'workdir_runs',
                            'Directory searched for results.json files.')
_OUT = flags.DEFINE_string('out', 'results', 'Output directory.')
_LIST_SKIPPED = flags.DEFINE_bool(
    'list_skipped', False, 'Name each results file left out, with why.')


def code_label(runs: list[dict[str, Any]]) -> str:
  """The commits that trained and finished a row's runs (short hashes,
  ``+dirty`` for a checkout with changes; ``?`` for a run, or the first steps
  of a resumed run, that did not record its code)."""
  labels = []
  for run in runs:
    segments = run.get('code_versions') or []
    versions = segments + [run.get('code_version') or {}]
    if segments and segments[0].get('from_step', 0) > 0:
      versions.insert(0, {})  # Steps before the first recorded segment.
    for version in versions:
      commit = version.get('commit')
      name = commit[:7] if commit else '?'
      if version.get('dirty'):
        name += '+dirty'
      if name not in labels:
        labels.append(name)
  return ','.join(labels)


def _has(fn: Any, run: dict[str, Any]) -> bool:
  """Whether ``fn(run)`` finds its field in ``run``."""
  try:
    fn(run)
  except (KeyError, TypeError):
    return False
  return True


def _values(group_runs: list[dict[str, Any]], fn: Callable) -> list[Any]:
  """``fn(run)`` of each of the row's runs that has the field."""
  out = []
  for r in group_runs:
    try:
      out.append(fn(r))
    except (KeyError, TypeError):
      pass
  return out


def _noted(group_runs: list[dict[str, Any]], text: str, fn: Callable) -> str:
  """``text``, naming the seeds that have ``fn``'s field when only some of
  the row's seeds do (a test size scored for seed 0 alone, say), so that it
  is not read as the row's mean."""
  have = [r['seed'] for r in group_runs if _has(fn, r)]
  if text == '-' or len(have) == len(group_runs):
    return text
  return f'{text} ({tables.seeds_text(have)})'


def _cell(group_runs: list[dict[str, Any]], fn: Callable,
          digits: int = 3) -> str:
  """The mean ± std of ``fn`` over the row's seeds (:func:`_noted`)."""
  return _noted(group_runs, tables.mean_std(_values(group_runs, fn), digits),
                fn)


def _solver_cell(group_runs: list[dict[str, Any]], size: str) -> str:
  """``mean / max`` solver iterations at ``size`` over the row's seeds."""
  means = _values(group_runs, lambda r: r['solver'][size]['iterations_mean'])
  maxes = _values(group_runs, lambda r: r['solver'][size]['iterations_max'])
  return _noted(group_runs,
                f'{np.mean(means):.1f} / {max(maxes)}' if means else '-',
                lambda r: r['solver'][size]['iterations_mean'])


def _head(sizes: list[str]) -> list[str]:
  """table.md's column names for the test sizes ``sizes``."""
  return (['algorithm', 'model', 'seeds', 'val']
          + [f'test ({s})' for s in sizes]
          + [f'true steps ({s})' for s in sizes]
          + [f'solver its mean/max ({s})' for s in sizes]
          + [f'ms/graph ({s})' for s in sizes]
          + ['train s', 'steps', 'code'])


def _row(alg: str, model: str, group_runs: list[dict[str, Any]],
         sizes: list[str]) -> list[str]:
  """table.md's cells of one row (its runs: one per seed)."""
  return (
      [alg, model, ','.join(str(r['seed']) for r in group_runs),
       _cell(group_runs, lambda r: r['val_score'])]
      + [_cell(group_runs, lambda r, s=s: r['test_scores'][s]['score'])
         for s in sizes]
      + [_cell(group_runs, lambda r, s=s: r['gt_steps_mean'][s], 1)
         for s in sizes]
      + [_solver_cell(group_runs, s) for s in sizes]
      + [_cell(group_runs, lambda r, s=s: 1e3 * r['seconds_per_sample'][s], 2)
         + _timing_shared_text(group_runs, s) for s in sizes]
      + [tables.mean_std(_values(group_runs, lambda r: r['train_seconds']), 0)
         + _train_shared_text(group_runs),
         ','.join(str(r.get('train_steps', '?')) for r in group_runs),
         code_label(group_runs)])


def markdown_table(runs: list[dict[str, Any]]) -> str:
  """table.md: one row per (algorithm, model, config); mean ± std over
  seeds; the notes on ``±`` and on times measured on shared cores."""
  sizes = run_files.test_sizes(runs)
  groups = run_files.group(runs)
  lines = tables.table(_head(sizes), [
      _row(alg, model, group_runs, sizes)
      for (alg, model), group_runs in groups.items()])
  lines += ['', STD_NOTE]
  if any(_timing_shared_text(g, s) for g in groups.values() for s in sizes):
    lines += ['', SHARED_NOTE]
  if any(_train_shared_text(g) for g in groups.values()):
    lines += ['', TRAIN_SHARED_NOTE]
  return tables.text(lines)


def _timing_shared_text(group_runs: list[dict[str, Any]], size: str) -> str:
  """`` (cores shared: seed 1)`` for the runs whose test timing at ``size``
  recorded a shared-core load (``provenance.shared_cores``); empty when
  none did."""
  shared = [r['seed'] for r in group_runs
            if provenance.shared_cores((r.get('load') or {}).get(size))]
  return f' (cores shared: {tables.seeds_text(shared)})' if shared else ''


def _train_shared_text(group_runs: list[dict[str, Any]]) -> str:
  """`` (cores shared: seed 2 at 3 of 21 validations)`` for the runs whose
  history records a shared-core load (``provenance.shared_cores``) at one
  validation or more; empty when none does (or none recorded a load)."""
  parts = []
  for r in group_runs:
    loads = [e['load'] for e in r.get('history') or [] if e.get('load')]
    shared = sum(provenance.shared_cores(load) for load in loads)
    if shared:
      parts.append(f'seed {r["seed"]} at {shared} of {len(loads)} '
                   f'validations')
  return f' (cores shared: {", ".join(parts)})' if parts else ''


#: Said under every table: what its ± is.
STD_NOTE = ('"a ± b": the mean and the *population* standard deviation '
            "(numpy's default, ddof=0) over the row's seeds; a cell that "
            'names seeds holds only those. gaps.md gives intervals of the '
            'differences, from the sample variances (ddof=1).')


#: Said under a table where some ms/graph were measured on shared cores.
SHARED_NOTE = ('"cores shared": those seeds were timed while other processes '
               f'kept at least {provenance.OTHERS_SHARE_LIMIT:.0%} of the '
               'CPUs the run could use busy, '
               "or, where that was not recorded, while the machine's "
               '1-minute load average was at least its CPUs + 0.5, so their '
               'ms/graph is slower than the model alone. Runs whose results '
               'file has no `load` did not record it.')


#: Said under a table where some train s were measured on shared cores.
TRAIN_SHARED_NOTE = ('"cores shared" beside `train s`: in that many of the '
                     "seed's stretches of training (each ending at a "
                     'validation) other processes kept at least '
                     f'{provenance.OTHERS_SHARE_LIMIT:.0%} of the CPUs the run '
                     'could use busy, or, where that was '
                     "not recorded, the machine's 1-minute load average at "
                     'the validation was at least its CPUs + 0.5, so its '
                     'training took longer than the model alone. Runs whose '
                     'history records no `load` did not record it.')


def _copy_text(run: dict[str, Any]) -> str:
  """A run as its copy holds it (the merged scores, without ``_path``)."""
  return json.dumps(run_files.without_path(run), indent=2,
                    sort_keys=True) + '\n'


def write_report(runs_dir: str, out_dir: str,
                 log: Callable[[str], None] = print,
                 list_skipped: bool = False) -> list[dict[str, Any]]:
  """Writes table.md, the plots and copies of the results files.

  The plots: score against graph size, solver iterations (DEAR) or steps
  taken (nar_lt) against the true steps, and, for runs with a history,
  score against training steps (``learning_curves.png``).

  Copies go into ``<out_dir>/runs/``, one name per (algorithm, model, seed,
  config). An existing copy is brought up to date when the run keeps all
  the copy holds and adds to it (a test size scored since by
  ``experiments.evaluate``), so that the table and its copies agree; a copy
  that differs otherwise is never overwritten.

  Only run folders (a ``results.json`` beside a ``config.json``) under
  ``runs_dir`` and report copies directly in it are read, and the
  project's own ``results/`` only when ``runs_dir`` is in it
  (``run_files.find_results``). How many files were left out and why is
  reported through ``log`` in one line (each file with its reason too
  with ``list_skipped``), and every copy not written with the reason.
  """
  skipped = []
  runs = run_files.load_runs(runs_dir, skipped, run_folders_only=True)
  if skipped:
    log(run_files.skipped_summary(skipped)
        + ('' if list_skipped else ' (--list_skipped names them)'))
  for path, reason in skipped if list_skipped else ():
    log(f'skipped {path}: {reason}')
  if not runs:
    raise FileNotFoundError(
        f'no run under {runs_dir} (a run folder holds results.json beside '
        f'config.json; report copies are read from the folder given)')
  os.makedirs(os.path.join(out_dir, 'runs'), exist_ok=True)
  for r in runs:
    target = os.path.join(out_dir, 'runs', run_files.copy_name(r))
    if os.path.realpath(target) == os.path.realpath(r['_path']):
      continue  # The report is reading its own copies.
    text = _copy_text(r)
    if os.path.exists(target):
      with open(target) as f:
        old = f.read()
      if old == text:
        continue
      try:
        extends = run_files.extends(json.loads(text), json.loads(old))
      except ValueError:  # A copy cut short or edited by hand.
        extends = False
      if not extends:
        log(f'not overwriting {target} (it differs from {r["_path"]}; '
            f'remove it to refresh the copy)')
        continue
      log(f'updated {target}: {r["_path"]} keeps all it held and adds '
          f'more (test sizes scored since)')
    with open(target, 'w') as f:
      f.write(text)
  write_outputs(runs, out_dir)
  return runs


def write_outputs(runs: list[dict[str, Any]], out_dir: str) -> list[str]:
  """Writes table.md, gaps.md and the plots of ``runs`` into ``out_dir``
  (no copies); returns the names written."""
  names = ['table.md', 'gaps.md', 'accuracy_vs_size.png',
           'iterations_vs_steps.png']
  with open(os.path.join(out_dir, 'table.md'), 'w') as f:
    f.write(markdown_table(runs))
  with open(os.path.join(out_dir, 'gaps.md'), 'w') as f:
    f.write(report_gaps.gap_table(runs))
  groups = run_files.group(runs)
  report_figures.plot_accuracy(
      groups, os.path.join(out_dir, 'accuracy_vs_size.png'))
  report_figures.plot_iterations(
      groups, os.path.join(out_dir, 'iterations_vs_steps.png'))
  if any(r.get('history') for r in runs):
    report_figures.plot_learning_curves(
        groups, os.path.join(out_dir, 'learning_curves.png'))
    names.append('learning_curves.png')
  return names


def main(argv: list[str]) -> None:
  """Writes the report of ``--runs`` into ``--out``."""
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  if not os.path.isdir(_RUNS.value):
    cli.fail(f'--runs={_RUNS.value} is not a directory')
  try:
    runs = write_report(_RUNS.value, _OUT.value,
                        list_skipped=_LIST_SKIPPED.value)
  except FileNotFoundError as e:
    cli.fail(e)
  print(f'{len(runs)} runs -> {_OUT.value}/table.md')


if __name__ == '__main__':
  app.run(main)
