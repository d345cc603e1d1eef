"""Gathers results.json files into a markdown table and two plots.

  python -m experiments.report --runs=workdir_runs --out=results

Reads every ``results.json`` under ``--runs`` (and, beside it, an
``eval_results.json`` written by ``experiments.evaluate``, whose extra test
sizes are merged in), then writes into ``--out``:

* ``table.md``: per algorithm and model, the CLRS score at every test size
  (mean +- std over seeds), the validation score, solver iterations against
  the true number of steps, inference time and training time;
* ``accuracy_vs_size.png``: score against graph size (16 = validation set);
* ``iterations_vs_steps.png``: DEAR's solver iterations per graph against
  the true algorithm's number of steps;
* ``runs/``: a copy of each gathered results file.
"""

from __future__ import annotations

import collections
import glob
import json
import os
import shutil
from typing import Any

import numpy as np
from absl import app
from absl import flags

_RUNS = flags.DEFINE_string('runs', 'workdir_runs',
                            'Directory searched for results.json files.')
_OUT = flags.DEFINE_string('out', 'results', 'Output directory.')


def load_runs(runs_dir: str) -> list[dict[str, Any]]:
  """Every results.json under ``runs_dir``, with eval_results.json merged."""
  runs = []
  pattern = os.path.join(runs_dir, '**', 'results.json')
  for path in sorted(glob.glob(pattern, recursive=True)):
    with open(path) as f:
      run = json.load(f)
    extra = os.path.join(os.path.dirname(path), 'eval_results.json')
    if os.path.exists(extra):
      with open(extra) as f:
        more = json.load(f)
      if more.get('params') == 'best':
        for key in ('test_scores', 'gt_steps_mean', 'seconds_per_sample',
                    'solver'):
          if more.get(key):
            run[key] = {**more[key], **(run.get(key) or {})}
    run['_path'] = path
    runs.append(run)
  return runs


def _fmt(values: list[float], digits: int = 3) -> str:
  if not values:
    return '-'
  if len(values) == 1:
    return f'{values[0]:.{digits}f}'
  return f'{np.mean(values):.{digits}f} ± {np.std(values):.{digits}f}'


def label(run: dict[str, Any]) -> str:
  """The model, with the config's ``tag`` (a variant) if it has one."""
  tag = run['config'].get('tag', '')
  return f'{run["model"]}:{tag}' if tag else run['model']


def group(runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict]]:
  """(algorithm, model label) -> runs (one per seed)."""
  groups = collections.defaultdict(list)
  for run in runs:
    groups[(run['algorithm'], label(run))].append(run)
  return dict(sorted(groups.items()))


def test_sizes(runs: list[dict[str, Any]]) -> list[str]:
  return sorted({s for r in runs for s in r['test_scores']}, key=int)


def markdown_table(runs: list[dict[str, Any]]) -> str:
  """One row per (algorithm, model); mean ± std over seeds."""
  sizes = test_sizes(runs)
  head = (['algorithm', 'model', 'seeds', 'val']
          + [f'test ({s})' for s in sizes]
          + [f'true steps ({s})' for s in sizes]
          + [f'solver its mean/max ({s})' for s in sizes]
          + [f'ms/graph ({s})' for s in sizes]
          + ['train s', 'steps'])
  lines = ['| ' + ' | '.join(head) + ' |',
           '|' + '---|' * len(head)]
  for (alg, model), group_runs in group(runs).items():
    def get(fn):
      out = []
      for r in group_runs:
        try:
          out.append(fn(r))
        except (KeyError, TypeError):
          pass
      return out
    row = [alg, model, ','.join(str(r['seed']) for r in group_runs),
           _fmt(get(lambda r: r['val_score']))]
    row += [_fmt(get(lambda r, s=s: r['test_scores'][s]['score']))
            for s in sizes]
    row += [_fmt(get(lambda r, s=s: r['gt_steps_mean'][s]), 1)
            for s in sizes]
    for s in sizes:
      means = get(lambda r, s=s: r['solver'][s]['iterations_mean'])
      maxes = get(lambda r, s=s: r['solver'][s]['iterations_max'])
      row.append(f'{np.mean(means):.1f} / {max(maxes)}' if means else '-')
    row += [_fmt(get(lambda r, s=s: 1e3 * r['seconds_per_sample'][s]), 2)
            for s in sizes]
    row += [_fmt(get(lambda r: r['train_seconds']), 0),
            ','.join(str(r.get('train_steps', '?')) for r in group_runs)]
    lines.append('| ' + ' | '.join(row) + ' |')
  return '\n'.join(lines) + '\n'


def plot_accuracy(runs: list[dict[str, Any]], path: str) -> None:
  """Score against graph size, one panel per algorithm, one line per model."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  algorithms = sorted({r['algorithm'] for r in runs})
  labels = sorted({label(r) for r in runs})
  colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(labels)}
  cols = min(5, len(algorithms))
  rows = -(-len(algorithms) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows),
                           squeeze=False, sharey=True)
  for ax, alg in zip(axes.flat, algorithms):
    for (a, model), group_runs in group(runs).items():
      if a != alg:
        continue
      points = collections.defaultdict(list)
      for r in group_runs:
        points[int(r['config']['val_size'])].append(r['val_score'])
        for s, scores in r['test_scores'].items():
          points[int(s)].append(scores['score'])
      xs = sorted(points)
      ys = [np.mean(points[x]) for x in xs]
      ax.plot(xs, ys, marker='o', color=colors[model], label=model)
    ax.set_title(alg, fontsize=9)
    ax.set_xscale('log', base=2)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel('nodes')
  for ax in list(axes.flat)[len(algorithms):]:
    ax.axis('off')
  axes.flat[0].set_ylabel('CLRS score')
  handles = [plt.Line2D([], [], color=colors[m], marker='o', label=m)
             for m in labels]
  axes.flat[0].legend(handles=handles, fontsize=8)
  fig.suptitle('Score against graph size (16 = validation, larger = test)')
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def plot_iterations(runs: list[dict[str, Any]], path: str) -> None:
  """DEAR's solver iterations per graph against the true number of steps."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  fig, ax = plt.subplots(figsize=(9, 5))
  top = 1.0
  algorithms = sorted({r['algorithm'] for r in runs})
  colors = {a: plt.cm.tab10(i % 10) for i, a in enumerate(algorithms)}
  variants = sorted({label(r) for r in runs if r.get('solver')})
  markers = {v: 'os^Dv'[i % 5] for i, v in enumerate(variants)}
  for (alg, model), group_runs in group(runs).items():
    xs, ys, hi = [], [], []
    for r in group_runs:
      for s, stats in (r.get('solver') or {}).items():
        if not stats:
          continue
        xs.append(r['gt_steps_mean'][s])
        ys.append(stats['iterations_mean'])
        hi.append(stats['iterations_max'] - stats['iterations_mean'])
    if xs:
      ax.errorbar(xs, ys, yerr=[np.zeros(len(hi)), hi], fmt=markers[model],
                  color=colors[alg], capsize=3, label=f'{alg} [{model}]')
      top = max(top, max(xs), max(np.add(ys, hi)))
  ax.plot([1, top], [1, top], 'k--', lw=1, label='iterations = true steps')
  ax.set_xscale('log')
  ax.set_yscale('log')
  ax.set_xlabel('true algorithm steps per graph (mean)')
  ax.set_ylabel('solver iterations per graph (mean; bar to max)')
  ax.set_title('DEAR: solver iterations against true steps (test sets)')
  ax.legend(fontsize=7, loc='center left', bbox_to_anchor=(1.01, 0.5))
  fig.tight_layout()
  fig.savefig(path, dpi=110)
  plt.close(fig)


def write_report(runs_dir: str, out_dir: str) -> list[dict[str, Any]]:
  """Writes table.md, the two plots and copies of the results files."""
  runs = load_runs(runs_dir)
  if not runs:
    raise FileNotFoundError(f'no results.json under {runs_dir}')
  os.makedirs(os.path.join(out_dir, 'runs'), exist_ok=True)
  for r in runs:
    name = f'{r["algorithm"]}.{label(r)}.seed{r["seed"]}.json'.replace(
        ':', '.')
    shutil.copyfile(r['_path'], os.path.join(out_dir, 'runs', name))
  with open(os.path.join(out_dir, 'table.md'), 'w') as f:
    f.write(markdown_table(runs))
  plot_accuracy(runs, os.path.join(out_dir, 'accuracy_vs_size.png'))
  plot_iterations(runs, os.path.join(out_dir, 'iterations_vs_steps.png'))
  return runs


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  runs = write_report(_RUNS.value, _OUT.value)
  print(f'{len(runs)} runs -> {_OUT.value}/table.md')


if __name__ == '__main__':
  app.run(main)
