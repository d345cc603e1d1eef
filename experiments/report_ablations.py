"""Evaluation-only ablations of DEAR runs as one markdown table (flag-free;
used by ``experiments.ablation_report``).

Each input is a JSON written by ``experiments.evaluate --output=...``: one
checkpoint scored with other solver settings (``solver_overrides``).
"""

from __future__ import annotations

from typing import Any

from experiments import run_files

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
  lines = ['| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
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
      lines.append('| ' + ' | '.join([
          r['algorithm'], str(r['seed']),
          settings_label(r['solver_overrides']), size,
          f'{scores["score"]:.3f}', delta, its, converged]) + ' |')
  return '\n'.join(lines) + '\n'
