"""Compares DEAR at the table's budget with the same runs trained longer.

  python -m experiments.budget_report --runs=results/dear_cpu/runs \\
      --snapshots=results/dear_cpu/steps5000 --tag=steps15k \\
      --out=results/dear_cpu/budget.md

A run of ``launch/sweeps/dear_longer.py`` trains in two legs: first to the
table's 5,000 steps (its ``results.json`` then is kept as the *snapshot*,
``results.5000.json``), then on to 15,000 from its own checkpoint, so both
budgets are read off one training trajectory. ``--runs`` holds the report
copies (``experiments.report``) of the table's ``dear`` and ``nar`` runs and
of the longer runs (model label ``dear:<tag>``); ``--snapshots`` holds the
snapshots. One row per longer run: NAR's score at 64 nodes over its seeds,
DEAR's table run of that seed, the longer run at 5,000 steps and at the end
(each with the step its lowest validation loss picked), the change between
the two, and the training seconds of each. The logic is
:mod:`experiments.report_budget`.
"""

import os

from absl import app
from absl import flags

from experiments import cli
from experiments import report_budget
from experiments import run_files

_RUNS = flags.DEFINE_string('runs', None, 'Folder of report copies.',
                            required=True)
_SNAPSHOTS = flags.DEFINE_string(
    'snapshots', None, 'Folder of the longer runs\' 5,000-step results.json '
    'snapshots (any *.json).', required=True)
_TAG = flags.DEFINE_string('tag', 'steps15k', 'Config tag of the longer runs.')
_OUT = flags.DEFINE_string('out', None, 'Markdown file to write.',
                           required=True)


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  for flag in (_RUNS, _SNAPSHOTS):
    if not os.path.isdir(flag.value):
      cli.fail(f'--{flag.name}={flag.value} is not a directory')
  skipped_files: list[tuple[str, str]] = []
  runs = run_files.load_runs(_RUNS.value, skipped_files)
  snapshots, bad = report_budget.load_snapshots(_SNAPSHOTS.value)
  for name in bad:
    print(f'skipped {name}: not a results file of experiments.train')
  comparisons, skipped = report_budget.rows(runs, snapshots, _TAG.value)
  for line in skipped:
    print(f'skipped {line}')
  if not comparisons:
    cli.fail(f'no run labelled dear:{_TAG.value} under {_RUNS.value}')
  with open(_OUT.value, 'w') as f:
    f.write(report_budget.markdown(comparisons))
  print(f'{len(comparisons)} longer runs -> {_OUT.value}')


if __name__ == '__main__':
  app.run(main)
