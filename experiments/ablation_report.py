"""Gathers evaluation-only ablations of DEAR runs into one markdown table.

  python -m experiments.ablation_report --files=results/dear_cpu/ablations \\
      --out=results/dear_cpu/ablations.md

Reads every ``*.json`` written by ``experiments.evaluate --output=...``
under ``--files`` (one checkpoint scored with other solver settings) and
writes one row per (algorithm, seed, settings, test size): the score, the
solver's iterations (mean / max) and the fraction of graphs that met the
tolerance, with the scores' difference from the same checkpoint scored as
trained (no overrides) when that file is there too. The logic is
:mod:`experiments.report_ablations`.
"""

import os

from absl import app
from absl import flags

from experiments import cli
from experiments import report_ablations

_FILES = flags.DEFINE_string('files', None, 'Folder of evaluate outputs.',
                             required=True)
_OUT = flags.DEFINE_string('out', None, 'Markdown file to write.',
                           required=True)


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  if not os.path.isdir(_FILES.value):
    cli.fail(f'--files={_FILES.value} is not a directory')
  results, skipped = report_ablations.load(_FILES.value)
  for name in skipped:
    print(f'skipped {name}: not an output of experiments.evaluate')
  if not results:
    cli.fail(f'no evaluation results under {_FILES.value}')
  with open(_OUT.value, 'w') as f:
    f.write(report_ablations.markdown(results))
  print(f'{len(results)} evaluations -> {_OUT.value}')


if __name__ == '__main__':
  app.run(main)
