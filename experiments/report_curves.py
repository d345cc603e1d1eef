"""Learning curves of a set of runs (flag-free; used by experiments.report).

Each run's ``results.json`` holds its ``history``: one entry per validation
with ``step``, ``val_score``, ``val_loss`` and, every ``test_every`` steps,
``test_scores`` (size -> score).
"""

from __future__ import annotations

import collections
from typing import Any
from typing import Callable

import numpy as np

#: The PNG metadata of every figure: none, not even matplotlib's version
#: (``Software``), so that a figure's bytes depend on what it draws.
PNG_METADATA = {'Software': None}


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
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt
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
      if a != alg:
        continue
      steps, mean, low, high = curve(runs, lambda e: e.get('val_score'))
      if steps:
        ax.plot(steps, mean, color=colors[model], lw=1.5)
        ax.fill_between(steps, low, high, color=colors[model], alpha=0.15)
      sizes = sorted({s for r in runs for e in r.get('history') or []
                      for s in e.get('test_scores', {})}, key=int)
      if sizes:
        test_size = test_size or sizes[0]
        steps, mean, _, _ = curve(
            runs, lambda e: e.get('test_scores', {}).get(test_size))
        ax.plot(steps, mean, color=colors[model], ls='--', marker='o',
                ms=3, lw=1)
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
  fig.tight_layout()
  fig.savefig(path, dpi=110, metadata=PNG_METADATA)
  plt.close(fig)
