"""DEAR at the table's budget beside the same runs trained longer, as one
markdown table.

  python -m experiments.budget_report --runs=results/dear_cpu/runs \\
      --snapshots=results/dear_cpu/steps5000 --tag=steps15k \\
      --out=results/dear_cpu/budget.md

A run of ``launch/sweeps/dear_longer.py`` trains in two legs
(``results/run_longer.sh``): first to the table's 5,000 steps (its
``results.json`` then is kept as the *snapshot*, ``results.5000.json``),
then on to 15,000 from its own checkpoint, so both budgets are read off one
training trajectory. ``--runs`` holds the report copies
(``experiments.report``) of the table's ``dear`` and ``nar`` runs and of
the longer runs (model label ``dear:<tag>``); ``--snapshots`` holds the
snapshots. One row per longer run: NAR's score at 64 nodes over its seeds,
DEAR's table run of that seed, the longer run at 5,000 steps and at the end
(each with the step its lowest validation loss picked), the change between
the two, and the training seconds of each.

The command and the table in one module: :func:`load_snapshots`,
:func:`rows` and :func:`markdown` are flag-free
(``experiments.rebuild_results`` builds ``budget.md`` with them), and the
flags are defined only when the module runs as the command, so importing it
beside another entry point (``experiments.report`` also has ``--runs`` and
``--out``) registers none.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np
from absl import app
from absl import flags

from experiments import cli
from experiments import run_files
from experiments import tables

SIZE = '64'


def _same_but_steps(a: dict[str, Any], b: dict[str, Any]) -> bool:
  """Whether two runs' configs agree on everything but ``train_steps``."""
  strip = lambda run: {k: v for k, v in json.loads(
      run_files.config_key(run)).items() if k != 'train_steps'}
  return strip(a) == strip(b)


def load_snapshots(folder: str) -> tuple[list[dict[str, Any]], list[str]]:
  """The results files in ``folder`` and the names of those left out."""
  return run_files.load_folder(folder, run_files.REQUIRED)


def _score(run: dict[str, Any]) -> float:
  return float(run['test_scores'][SIZE]['score'])


def rows(runs: list[dict[str, Any]], snapshots: list[dict[str, Any]],
         tag: str) -> tuple[list[dict[str, Any]], list[str]]:
  """One comparison per longer run (label ``dear:<tag>``) and what was left
  out, with why.

  Each comparison holds the algorithm and seed; ``nar`` (the table's NAR
  scores at 64 nodes by seed) and ``nar_seconds``; ``table`` (the table's
  DEAR run of that seed, or None); ``short`` (the snapshot of the same run
  at the table's budget, or None) and ``long`` (the longer run).
  """
  by_label: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
  for run in runs:
    key = (run['algorithm'], run_files.label(run), run['seed'])
    by_label.setdefault(key, []).append(run)
  out, skipped = [], []

  def one(algorithm: str, label: str, seed: int) -> dict[str, Any] | None:
    """The run of that label and seed; None, said in ``skipped``, if
    several configs have it (nothing tells which one is meant)."""
    found = by_label.get((algorithm, label, seed), [])
    if len(found) > 1:
      skipped.append(f'{algorithm} {label} seed {seed}: {len(found)} runs '
                     f'of different configs, none used')
    return found[0] if len(found) == 1 else None

  for (algorithm, label, seed) in sorted(by_label):
    if label != f'dear:{tag}':
      continue
    long = one(algorithm, label, seed)
    if long is None:
      continue
    table = one(algorithm, 'dear', seed)
    if table is not None and not _same_but_steps(
        {**table, 'config': {**table['config'], 'tag': tag}}, long):
      skipped.append(f'{algorithm} seed {seed}: the table\'s dear run has '
                     f'another config, not compared')
      table = None
    nar = {s: one(algorithm, 'nar', s) for (a, lab, s) in sorted(by_label)
           if a == algorithm and lab == 'nar'}
    nar = {s: r for s, r in nar.items() if r is not None}
    short = [s for s in snapshots
             if s['algorithm'] == algorithm and s['seed'] == seed
             and run_files.label(s) == label and _same_but_steps(s, long)]
    if len(short) > 1:
      skipped.append(f'{algorithm} seed {seed}: {len(short)} snapshots, '
                     f'none used')
    out.append(dict(
        algorithm=algorithm, seed=seed, table=table,
        nar={s: _score(r) for s, r in nar.items()},
        nar_seconds=[float(r['train_seconds']) for r in nar.values()
                     if r.get('train_seconds') is not None],
        short=short[0] if len(short) == 1 else None, long=long))
  return out, skipped


def _at(run: dict[str, Any] | None) -> str:
  if run is None:
    return '-'
  return f'{_score(run):.3f} (step {run["best_step"]})'


def _seconds(run: dict[str, Any] | None) -> str:
  if run is None or run.get('train_seconds') is None:
    return '-'
  return f'{run["train_seconds"]:.0f}'


def markdown(comparisons: list[dict[str, Any]]) -> str:
  """The comparisons as one markdown table (scores at 64 nodes)."""
  head = ['algorithm', 'seed', 'nar (seeds)', 'dear, table run',
          'dear, 5,000 steps', 'dear, longer', 'steps', 'change',
          'nar train s', 'dear train s (5,000 / longer)']
  lines = tables.header(head)
  for c in comparisons:
    nar = list(c['nar'].values())
    seeds = ','.join(str(s) for s in c['nar'])
    nar_cell = (f'{np.mean(nar):.3f} ± {np.std(nar):.3f} ({seeds})'
                if nar else '-')
    short, long = c['short'], c['long']
    change = (f'{_score(long) - _score(short):+.3f}'
              if short is not None else '-')
    nar_s = (f'{np.mean(c["nar_seconds"]):.0f}' if c['nar_seconds']
             else '-')
    lines.append(tables.row([
        c['algorithm'], str(c['seed']), nar_cell,
        '-' if c['table'] is None else f'{_score(c["table"]):.3f}',
        _at(short), _at(long), str(long['train_steps']), change, nar_s,
        f'{_seconds(short)} / {_seconds(long)}']))
  lines += ['', STD_NOTE]
  return tables.text(lines)


#: Said under the table: what its ± is.
STD_NOTE = ('"nar (seeds)": the mean and the *population* standard '
            "deviation (numpy's default, ddof=0) over the seeds named.")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The command's flags, defined when it runs."""
  flags.DEFINE_string('runs', None, 'Folder of report copies.',
                      required=True, flag_values=flag_values)
  flags.DEFINE_string(
      'snapshots', None, 'Folder of the longer runs\' 5,000-step '
      'results.json snapshots (any *.json).', required=True,
      flag_values=flag_values)
  flags.DEFINE_string('tag', 'steps15k', 'Config tag of the longer runs.',
                      flag_values=flag_values)
  flags.DEFINE_string('out', None, 'Markdown file to write.', required=True,
                      flag_values=flag_values)


def main(argv: list[str]) -> None:
  """Writes ``--out`` from the runs and snapshots given."""
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  values = flags.FLAGS
  for name in ('runs', 'snapshots'):
    if not os.path.isdir(values[name].value):
      cli.fail(f'--{name}={values[name].value} is not a directory')
  skipped_files: list[tuple[str, str]] = []
  runs = run_files.load_runs(values.runs, skipped_files)
  snapshots, bad = load_snapshots(values.snapshots)
  for name in bad:
    print(f'skipped {name}: not a results file of experiments.train')
  comparisons, skipped = rows(runs, snapshots, values.tag)
  for line in skipped:
    print(f'skipped {line}')
  if not comparisons:
    cli.fail(f'no run labelled dear:{values.tag} under {values.runs}')
  with open(values.out, 'w') as f:
    f.write(markdown(comparisons))
  print(f'{len(comparisons)} longer runs -> {values.out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
