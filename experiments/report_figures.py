"""The report's figures (flag-free; drawn by ``experiments.report``).

* ``accuracy_vs_size.png`` (:func:`plot_accuracy`): score against graph
  size, one panel per algorithm, one line per row;
* ``iterations_vs_steps.png`` (:func:`plot_iterations`): DEAR's solver
  iterations per graph against the true number of steps;
* ``learning_curves.png`` (:func:`plot_learning_curves`): score against
  training steps. Each run's ``results.json`` holds its ``history``: one
  entry per validation with ``step``, ``val_score``, ``val_loss`` and,
  every ``test_every`` steps, ``test_scores`` (size -> score).

Every figure is saved without metadata (:data:`PNG_METADATA`).
"""

from __future__ import annotations

import collections
from typing import Any
from typing import Callable

import numpy as np

#: The PNG metadata of every figure: none, not even matplotlib's version
#: (``Software``), so that a figure's bytes depend on what it draws.
PNG_METADATA = {'Software': None}


def _pyplot() -> Any:
  """matplotlib.pyplot on the file-only Agg backend (imported when a figure
  is drawn: the report's tables need no matplotlib)."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
  return plt


def _save(fig: Any, path: str) -> None:
  """Lays out, writes (the same bytes for the same figure) and closes a
  figure."""
  fig.tight_layout()
  fig.savefig(path, dpi=110, metadata=PNG_METADATA)
  _pyplot().close(fig)


def curve(runs: list[dict[str, Any]],
          value: Callable[[dict[str, Any]], float | None]
          ) -> tuple[list[int], list[float], list[float], list[float]]:
  """Mean, min and max over runs of ``value(entry)`` at each step.

  Steps where some run has no value are left out, so every point averages
  the same runs. Returns ``(steps, mean, low, high)``.
  """
  per_step = collections.defaultdict(list)
  for run in runs:
    for entry in run.get('history') or []:
      v = value(entry)
      if v is not None:
        per_step[entry['step']].append(v)
  steps = sorted(s for s, vs in per_step.items() if len(vs) == len(runs))
  vals = [per_step[s] for s in steps]
  return (steps, [float(np.mean(v)) for v in vals],
          [float(np.min(v)) for v in vals], [float(np.max(v)) for v in vals])


def _thousands(step: float, _=None) -> str:
  """A step as a tick label: ``0``, ``500``, ``2.5k``, ``15k``."""
  return f'{step / 1000:g}k' if abs(step) >= 1000 else f'{step:g}'


def _draw_curves(ax: Any, runs: list[dict[str, Any]], color: Any,
                 test_size: str | None) -> str | None:
  """Draws one row's learning curves on ``ax``: its validation score (solid,
  band: range over seeds) and its score at ``test_size`` (dashed; the row's
  first test size if None), where the runs scored one during training.
  Returns the test size drawn, or ``test_size`` if none."""
  steps, mean, low, high = curve(runs, lambda e: e.get('val_score'))
  if steps:
    ax.plot(steps, mean, color=color, lw=1.5)
    ax.fill_between(steps, low, high, color=color, alpha=0.15)
  sizes = sorted({s for r in runs for e in r.get('history') or []
                  for s in e.get('test_scores', {})}, key=int)
  if sizes:
    test_size = test_size or sizes[0]
    steps, mean, _, _ = curve(
        runs, lambda e: e.get('test_scores', {}).get(test_size))
    ax.plot(steps, mean, color=color, ls='--', marker='o', ms=3, lw=1)
  return test_size


def plot_learning_curves(groups: dict[tuple[str, str], list[dict[str, Any]]],
                         path: str) -> None:
  """Score against training steps, one panel per algorithm.

  Solid: validation score (16 nodes); dashed with markers: the first test
  size's score, where the runs scored it during training. Lines are means
  over seeds, bands their range.

  Args:
    groups: ``(algorithm, model label) -> runs`` (one per seed).
    path: the PNG to write.
  """
  plt = _pyplot()
  from matplotlib import ticker

  algorithms = sorted({alg for alg, _ in groups})
  labels = sorted({model for _, model in groups})
  colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(labels)}
  cols = min(5, len(algorithms))
  rows = -(-len(algorithms) // cols)
  fig, axes = plt.subplots(rows, cols,
                           figsize=(max(6.0, 3.4 * cols), 2.9 * rows),
                           squeeze=False, sharey=True)
  test_size = None
  for ax, alg in zip(axes.flat, algorithms):
    for (a, model), runs in groups.items():
      if a == alg:
        test_size = _draw_curves(ax, runs, colors[model], test_size)
    ax.set_title(alg, fontsize=9)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel('training step')
    # At most 5 ticks, in thousands, so that 15,000-step runs stay legible.
    ax.xaxis.set_major_locator(ticker.MaxNLocator(5, steps=[1, 2, 5, 10]))
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(_thousands))
  for ax in list(axes.flat)[len(algorithms):]:
    ax.axis('off')
  axes.flat[0].set_ylabel('CLRS score')
  handles = [plt.Line2D([], [], color=colors[m], label=m) for m in labels]
  handles.append(plt.Line2D([], [], color='k', label='validation (16)'))
  if test_size:
    handles.append(plt.Line2D([], [], color='k', ls='--', marker='o', ms=3,
                              label=f'test ({test_size})'))
  axes.flat[0].legend(handles=handles, fontsize=7)
  fig.suptitle('Score against training steps\n(mean over seeds, band: range)',
               fontsize=10)
  _save(fig, path)


def plot_accuracy(groups: dict[tuple[str, str], list[dict[str, Any]]],
                  path: str) -> None:
  """Score against graph size, one panel per algorithm, one line per row
  (``groups``: ``run_files.group``'s rows)."""
  plt = _pyplot()

  algorithms = sorted({alg for alg, _ in groups})
  labels = sorted({name for _, name in groups})
  colors = {m: plt.cm.tab10(i % 10) for i, m in enumerate(labels)}
  cols = min(5, len(algorithms))
  rows = -(-len(algorithms) // cols)
  fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows),
                           squeeze=False, sharey=True)
  for ax, alg in zip(axes.flat, algorithms):
    for (a, model), group_runs in groups.items():
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
  fig.suptitle('Score against graph size\n(16 = validation, larger = test)',
               fontsize=10)
  _save(fig, path)


def plot_iterations(groups: dict[tuple[str, str], list[dict[str, Any]]],
                    path: str) -> None:
  """DEAR's solver iterations per graph against the true number of steps
  (``groups``: ``run_files.group``'s rows)."""
  plt = _pyplot()

  fig, ax = plt.subplots(figsize=(9, 5))
  top = 1.0
  algorithms = sorted({alg for alg, _ in groups})
  colors = {a: plt.cm.tab10(i % 10) for i, a in enumerate(algorithms)}
  variants = sorted({name for (_, name), group_runs in groups.items()
                     if any(r.get('solver') for r in group_runs)})
  markers = {v: 'os^Dv'[i % 5] for i, v in enumerate(variants)}
  for (alg, model), group_runs in groups.items():
    xs, ys, hi = [], [], []
    for r in group_runs:
      for s, solver in (r.get('solver') or {}).items():
        if not solver:
          continue
        xs.append(r['gt_steps_mean'][s])
        ys.append(solver['iterations_mean'])
        hi.append(solver['iterations_max'] - solver['iterations_mean'])
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
  _save(fig, path)
