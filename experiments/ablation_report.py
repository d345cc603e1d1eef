"""Evaluation-only ablations of DEAR runs as one markdown table.

  python -m experiments.ablation_report --files=results/dear_cpu/ablations \\
      --out=results/dear_cpu/ablations.md

Reads every ``*.json`` written by ``experiments.evaluate --output=...``
under ``--files`` (one checkpoint scored with other solver settings,
``solver_overrides``) and writes one row per (algorithm, seed, settings,
test size): the score, the solver's iterations (mean / max) and the
fraction of graphs that met the tolerance, with the scores' difference from
the same checkpoint scored as trained (no overrides) when that file is
there too.

The command and the table in one module: :func:`load` and :func:`markdown`
are flag-free (``experiments.rebuild_results`` builds ``ablations.md`` with
them), and the flags are defined only when the module runs as the command,
so importing it beside another entry point (``experiments.report`` also has
``--out``) registers none.
"""

from __future__ import annotations

import os
from typing import Any

from absl import app
from absl import flags

from experiments import cli
from experiments import run_files
from experiments import tables

REQUIRED = ('algorithm', 'model', 'seed', 'test_scores', 'solver_overrides')


def load(folder: str) -> tuple[list[dict[str, Any]], list[str]]:
  """The evaluation files of ``folder`` and the names of those left out."""
  return run_files.load_folder(folder, REQUIRED)


def settings_label(overrides: dict[str, Any]) -> str:
  """``as trained`` or the overrides, e.g. ``rel_tol=0.01``."""
  if not overrides:
    return 'as trained'
  return ', '.join(f'{k}={v}' for k, v in sorted(overrides.items()))


def markdown(results: list[dict[str, Any]]) -> str:
  """One row per (algorithm, seed, settings, test size), grouped by run."""
  head = ['algorithm', 'seed', 'settings', 'size', 'test', 'vs as trained',
          'solver its mean / max', 'converged']
  lines = tables.header(head)
  base = {(r['algorithm'], r['seed'], size): v['score']
          for r in results if not r['solver_overrides']
          for size, v in r['test_scores'].items()}
  key = lambda r: (r['algorithm'], r['seed'],
                   bool(r['solver_overrides']),
                   settings_label(r['solver_overrides']))
  for r in sorted(results, key=key):
    for size, scores in sorted(r['test_scores'].items(),
                               key=lambda kv: int(kv[0])):
      solver = (r.get('solver') or {}).get(size, {})
      ref = base.get((r['algorithm'], r['seed'], size))
      delta = ('-' if ref is None or not r['solver_overrides']
               else f'{scores["score"] - ref:+.3f}')
      its = (f'{solver["iterations_mean"]:.1f} / {solver["iterations_max"]}'
             if solver else '-')
      converged = (f'{solver["converged_fraction"]:.2f}' if solver else '-')
      lines.append(tables.row([
          r['algorithm'], str(r['seed']),
          settings_label(r['solver_overrides']), size,
          f'{scores["score"]:.3f}', delta, its, converged]))
  return tables.text(lines)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """The command's flags (``--files``, ``--out``), defined when it runs."""
  flags.DEFINE_string('files', None, 'Folder of evaluate outputs.',
                      required=True, flag_values=flag_values)
  flags.DEFINE_string('out', None, 'Markdown file to write.', required=True,
                      flag_values=flag_values)


def main(argv: list[str]) -> None:
  """Writes ``--out`` from the evaluation files under ``--files``."""
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  files, out = flags.FLAGS.files, flags.FLAGS.out
  if not os.path.isdir(files):
    cli.fail(f'--files={files} is not a directory')
  results, skipped = load(files)
  for name in skipped:
    print(f'skipped {name}: not an output of experiments.evaluate')
  if not results:
    cli.fail(f'no evaluation results under {files}')
  with open(out, 'w') as f:
    f.write(markdown(results))
  print(f'{len(results)} evaluations -> {out}')


if __name__ == '__main__':
  define_flags()
  app.run(main)
