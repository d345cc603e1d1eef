"""Gathers results.json files into a markdown table and two plots.

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
  graphs where both rows stored per-graph scores: :mod:`experiments.stats`),
  the verdict that follows the interval, and for DEAR against NAR at 64
  nodes the verdict after Holm's correction over the algorithms; a positive
  difference means the row is ahead;
* ``accuracy_vs_size.png``: score against graph size (16 = validation set);
* ``iterations_vs_steps.png``: DEAR's solver iterations per graph against
  the true algorithm's number of steps;
* ``runs/``: a copy of each gathered run, ``<algorithm>.<model>.seed<seed>.
  <config hash>.results.json``: its results.json with the extra test sizes
  of its eval_results.json merged in (updated when the run only adds test
  sizes, never overwritten otherwise), so that ``--runs=<out>/runs``
  rebuilds the same table from the copies alone.

Runs are pooled as seeds of one row only when their configs agree on all
but the seed and bookkeeping fields; results files reached twice through
symbolic links are read once; what is left out is printed with the reason.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
from absl import app
from absl import flags

from deq_clrs.training import provenance
from experiments import cli
from experiments import report_curves
from experiments import run_files
from experiments import stats
from experiments import tables

_RUNS = flags.DEFINE_string('runs', 'workdir_runs',
                            'Directory searched for results.json files.')
_OUT = flags.DEFINE_string('out', 'results', 'Output directory.')
_LIST_SKIPPED = flags.DEFINE_bool(
    'list_skipped', False, 'Name each results file left out, with why.')


def group(runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict]]:
  """(algorithm, row label) -> runs of one config (one per seed).

  Runs are seeds of one row only if their configs agree on everything but
  the seed and bookkeeping fields (``run_files.BOOKKEEPING``). Where one
  (algorithm, model) has several configs, each row's label names the
  settings that tell them apart, e.g. ``dear (train_steps=500)``.
  """
  by_config = collections.defaultdict(list)
  for run in runs:
    by_config[(run['algorithm'], run_files.label(run),
               run_files.config_key(run))].append(run)
  families = collections.defaultdict(list)
  for alg, model, key in by_config:
    families[(alg, model)].append(json.loads(key))
  groups = {}
  for (alg, model, key), group_runs in by_config.items():
    configs = [_flat(c) for c in families[(alg, model)]]
    name = model
    if len(configs) > 1:
      config = _flat(json.loads(key))
      differ = sorted({k for c in configs for k in set(c) | set(config)
                       if c.get(k) != config.get(k)})
      shown = [f'{k}={json.dumps(config.get(k))}' for k in differ[:MAX_SHOWN]]
      if len(differ) > MAX_SHOWN:
        shown.append(f'+{len(differ) - MAX_SHOWN} more')
      name += ' (' + ', '.join(shown) + ')'
    groups[(alg, name)] = sorted(group_runs, key=lambda r: r['seed'])
  return dict(sorted(groups.items()))


# Settings named in a row label at most (the first, alphabetically).
MAX_SHOWN = 3


def _flat(config: dict[str, Any], prefix: str = '') -> dict[str, Any]:
  """Nested config dicts as one dict with dotted keys (``deq.rel_tol``)."""
  out = {}
  for k, v in config.items():
    if isinstance(v, dict):
      out.update(_flat(v, f'{prefix}{k}.'))
    else:
      out[f'{prefix}{k}'] = v
  return out


def test_sizes(runs: list[dict[str, Any]]) -> list[str]:
  return sorted({s for r in runs for s in r['test_scores']}, key=int)


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


def markdown_table(runs: list[dict[str, Any]]) -> str:
  """One row per (algorithm, model, config); mean ± std over seeds."""
  sizes = test_sizes(runs)
  head = (['algorithm', 'model', 'seeds', 'val']
          + [f'test ({s})' for s in sizes]
          + [f'true steps ({s})' for s in sizes]
          + [f'solver its mean/max ({s})' for s in sizes]
          + [f'ms/graph ({s})' for s in sizes]
          + ['train s', 'steps', 'code'])
  lines = tables.header(head)
  flagged = train_flagged = False
  for (alg, model), group_runs in group(runs).items():
    def get(fn):
      out = []
      for r in group_runs:
        try:
          out.append(fn(r))
        except (KeyError, TypeError):
          pass
      return out

    def note(text, fn):
      # A statistic that only some of the row's seeds have (a test size
      # scored for seed 0 alone, say) names those seeds, so that it is not
      # read as the row's mean.
      have = [r['seed'] for r in group_runs if _has(fn, r)]
      if text == '-' or len(have) == len(group_runs):
        return text
      return f'{text} ({tables.seeds_text(have)})'

    def cell(fn, digits=3):
      return note(tables.mean_std(get(fn), digits), fn)

    row = [alg, model, ','.join(str(r['seed']) for r in group_runs),
           cell(lambda r: r['val_score'])]
    row += [cell(lambda r, s=s: r['test_scores'][s]['score'])
            for s in sizes]
    row += [cell(lambda r, s=s: r['gt_steps_mean'][s], 1)
            for s in sizes]
    for s in sizes:
      means = get(lambda r, s=s: r['solver'][s]['iterations_mean'])
      maxes = get(lambda r, s=s: r['solver'][s]['iterations_max'])
      row.append(note(f'{np.mean(means):.1f} / {max(maxes)}' if means else '-',
                      lambda r, s=s: r['solver'][s]['iterations_mean']))
    for s in sizes:
      shared = _timing_shared_text(group_runs, s)
      flagged = flagged or bool(shared)
      row.append(cell(lambda r, s=s: 1e3 * r['seconds_per_sample'][s], 2)
                 + shared)
    train_shared = _train_shared_text(group_runs)
    train_flagged = train_flagged or bool(train_shared)
    row += [tables.mean_std(get(lambda r: r['train_seconds']), 0)
            + train_shared,
            ','.join(str(r.get('train_steps', '?')) for r in group_runs),
            code_label(group_runs)]
    lines.append(tables.row(row))
  lines += ['', STD_NOTE]
  if flagged:
    lines += ['', SHARED_NOTE]
  if train_flagged:
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


#: The row every other model of an algorithm is compared with in gaps.md.
BASELINE = 'nar'


def _scores(group_runs: list[dict[str, Any]], size: str) -> dict[int, float]:
  """seed -> test score at ``size`` of the runs that were scored there."""
  return {r['seed']: r['test_scores'][size]['score'] for r in group_runs
          if size in r['test_scores']}


#: The test size of the main comparison (DEAR against NAR, Holm-corrected).
MAIN_SIZE = '64'
#: The second baseline DEAR is compared with (NAR, learned termination).
LT_BASELINE = 'nar_lt'


def _per_graph(group_runs: list[dict[str, Any]], size: str
               ) -> dict[int, list[float]] | None:
  """seed -> per-graph test scores at ``size``; None unless every run
  scored there stored them (``test_scores_per_graph``)."""
  out = {}
  for r in group_runs:
    if size not in r['test_scores']:
      continue
    scores = (r.get('test_scores_per_graph') or {}).get(size)
    if not scores:
      return None
    out[r['seed']] = scores
  return out


def compare(mine: list[dict[str, Any]], base: list[dict[str, Any]],
            size: str) -> stats.Comparison:
  """``mine`` less ``base`` at ``size``: a paired bootstrap over seeds and
  test graphs where both rows stored per-graph scores of one test set,
  Welch's interval over seeds otherwise."""
  graphs_mine, graphs_base = _per_graph(mine, size), _per_graph(base, size)
  if graphs_mine and graphs_base and len(
      {len(v) for v in (*graphs_mine.values(), *graphs_base.values())}) == 1:
    return stats.paired_bootstrap(graphs_mine, graphs_base)
  return stats.welch(list(_scores(mine, size).values()),
                     list(_scores(base, size).values()))


def _signed(x: float) -> str:
  return f'{x:+.3f}'


def _interval(c: stats.Comparison) -> str:
  return '-' if c.low is None else f'[{_signed(c.low)}, {_signed(c.high)}]'


def _p(p: float | None) -> str:
  if p is None:
    return '-'
  return '< 0.001' if p < 0.001 else f'{p:.3f}'


def _method(c: stats.Comparison) -> str:
  if c.method == 'bootstrap':
    return 'paired bootstrap'
  return 'Welch (no per-graph scores)'


def _score_cell(scores: dict[int, float]) -> str:
  return (f'{tables.mean_std(list(scores.values()))} '
          f'({tables.seeds_text(sorted(scores))})')


def _comparisons(runs: list[dict[str, Any]], baseline: str,
                 rows: Callable[[str], bool]
                 ) -> list[tuple[str, str, str, dict, dict, Any]]:
  """``(size, algorithm, row, row scores, baseline scores, comparison)``
  for each row (``rows(name)``) of an algorithm that has a ``baseline``
  row, at each test size both were scored at."""
  groups = group(runs)
  out = []
  for size in test_sizes(runs):
    for (alg, name), group_runs in groups.items():
      base_runs = groups.get((alg, baseline))
      if name == baseline or base_runs is None or not rows(name):
        continue
      mine, base = _scores(group_runs, size), _scores(base_runs, size)
      if mine and base:
        out.append((size, alg, name, mine, base,
                    compare(group_runs, base_runs, size)))
  return out


def main_comparison(runs: list[dict[str, Any]], size: str = MAIN_SIZE,
                    model: str = 'dear', baseline: str = BASELINE
                    ) -> list[str]:
  """DEAR less NAR per algorithm at ``size``, each with its own verdict and
  the verdict after Holm's correction over the algorithms (the lines of a
  markdown table and a sentence under it)."""
  found = [c for c in _comparisons(runs, baseline, lambda n: n == model)
           if c[0] == size]
  adjusted = stats.holm_adjusted([c[-1].p for c in found])
  rows = []
  for (_, alg, _, mine, base, c), p in zip(found, adjusted):
    after = stats.verdict(c)
    if p is not None:
      after = (after if after in ('ahead', 'behind') and p <= 1 - stats.LEVEL
               else 'not resolved after Holm')
    rows.append([alg, _score_cell(mine), _score_cell(base),
                 _signed(c.difference), _interval(c), _p(c.p),
                 stats.verdict(c), _p(p), after])
  head = ['algorithm', f'{model} score', f'{baseline} score',
          f'{model} − {baseline}', '95% interval', 'p', 'verdict',
          'Holm-adjusted p', 'verdict after Holm']
  resolved = sum(r[-1] in ('ahead', 'behind') for r in rows)
  return tables.table(head, rows) + [
      '', f'After Holm\'s correction over these {len(rows)} algorithms '
      f'(family-wise error 5%), {resolved} of {len(rows)} differences are '
      f'resolved.']


def gap_table(runs: list[dict[str, Any]], baseline: str = BASELINE) -> str:
  """gaps.md: each row of an algorithm against its ``baseline`` row.

  Three tables, after notes on the sign, the ``±`` and the intervals: the
  main comparison (``dear`` less ``baseline`` at ``MAIN_SIZE`` nodes,
  Holm-corrected over the algorithms); every row less ``baseline`` at every
  test size both were scored at, with the difference over the seeds both
  have (``-`` when they share none); and ``dear`` less ``LT_BASELINE``.

  Returns:
    The markdown text.
  """
  vs_base = _comparisons(runs, baseline, lambda name: True)
  vs_lt = _comparisons(runs, LT_BASELINE, lambda name: name == 'dear')
  every = []
  for size, alg, name, mine, base, c in vs_base:
    shared = sorted(set(mine) & set(base))
    paired = (f'{_signed(np.mean([mine[s] - base[s] for s in shared]))} '
              f'({tables.seeds_text(shared)})' if shared else '-')
    every.append([size, alg, name, _score_cell(mine), _score_cell(base),
                  _signed(c.difference), _interval(c), stats.verdict(c),
                  _method(c), paired])
  lt = [[size, alg, _score_cell(mine), _score_cell(base),
         _signed(c.difference), _interval(c), stats.verdict(c), _method(c)]
        for size, alg, _, mine, base, c in vs_lt]
  bootstrapped = any(c[-1].method == 'bootstrap' for c in vs_base + vs_lt)
  lines = [
      f'# Each row against {baseline}', '', GAPS_NOTE, '',
      BOOTSTRAP_NOTE if bootstrapped else WELCH_ONLY_NOTE, '',
      f'## Main comparison: dear − {baseline} at {MAIN_SIZE} nodes, '
      f'corrected for multiple comparisons', '',
      *main_comparison(runs, baseline=baseline), '',
      f'## Every row − {baseline}', '',
      *tables.table(['test size', 'algorithm', 'row', 'row score',
                     f'{baseline} score', f'row − {baseline}',
                     '95% interval', 'verdict', 'interval from',
                     f'row − {baseline}, shared seeds'], every), '',
      f'## dear − {LT_BASELINE} (learned termination)', '',
      *tables.table(['test size', 'algorithm', 'dear score',
                     f'{LT_BASELINE} score', f'dear − {LT_BASELINE}',
                     '95% interval', 'verdict', 'interval from'], lt)]
  return tables.text(lines)


#: Said at the top of gaps.md: the sign, the ± and the verdicts.
GAPS_NOTE = (
    'Generated by `experiments.report` from the run records; do not edit. '
    '**Sign: every difference is the row\'s CLRS score less the '
    'baseline\'s, so a positive difference means the row (DEAR) is ahead '
    'and a negative one that it trails.** Score cells are the mean ± the '
    '*population* standard deviation (numpy\'s default, ddof=0) over the '
    'seeds named, as in table.md. Intervals are 95% intervals of the '
    'difference; the verdict follows the interval: `ahead` (it lies above '
    '0), `behind` (below 0), `not resolved at n seeds` (it holds 0), '
    '`1 seed: no interval` (a side has one seed). Welch intervals use each '
    'side\'s *sample* variance (ddof=1), the Welch-Satterthwaite degrees of '
    'freedom and Student\'s t quantile; p is Welch\'s two-sided p-value. '
    'Each verdict holds for its own comparison; the main comparison also '
    'gives the verdict after Holm\'s correction over its algorithms.')
#: Said when no interval could use per-graph scores.
WELCH_ONLY_NOTE = (
    'No run here stored per-graph test scores (runs store them from now '
    'on, as `test_scores_per_graph`), so every interval is Welch\'s over '
    'seeds. All runs are scored on one shared test set, so these intervals '
    'leave out test-set noise: they say how far another seed could move '
    'the score, not another draw of test graphs.')
#: Said when some interval did.
BOOTSTRAP_NOTE = (
    'Where both rows stored per-graph test scores, the interval is a paired '
    'bootstrap over seeds and test graphs (all runs share one test set, so '
    'graph i of one row pairs with graph i of the other; 10,000 replicates, '
    'percentile interval) of the mean per-graph score, which is the CLRS '
    'score where each output is an accuracy over graphs of one size and '
    'differs slightly for F1-scored mask outputs; elsewhere it is Welch\'s '
    'over seeds, which leaves out test-set noise.')


def plot_accuracy(runs: list[dict[str, Any]], path: str) -> None:
  """Score against graph size, one panel per algorithm, one line per model."""
  import matplotlib
  matplotlib.use('Agg')
  import matplotlib.pyplot as plt

  algorithms = sorted({r['algorithm'] for r in runs})
  labels = sorted({name for _, name in group(runs)})
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
  fig.suptitle('Score against graph size\n(16 = validation, larger = test)',
               fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=110, metadata=report_curves.PNG_METADATA)
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
  variants = sorted({name for (_, name), group_runs in group(runs).items()
                     if any(r.get('solver') for r in group_runs)})
  markers = {v: 'os^Dv'[i % 5] for i, v in enumerate(variants)}
  for (alg, model), group_runs in group(runs).items():
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
  fig.tight_layout()
  fig.savefig(path, dpi=110, metadata=report_curves.PNG_METADATA)
  plt.close(fig)


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
    f.write(gap_table(runs))
  plot_accuracy(runs, os.path.join(out_dir, 'accuracy_vs_size.png'))
  plot_iterations(runs, os.path.join(out_dir, 'iterations_vs_steps.png'))
  if any(r.get('history') for r in runs):
    report_curves.plot_learning_curves(
        group(runs), os.path.join(out_dir, 'learning_curves.png'))
    names.append('learning_curves.png')
  return names


def main(argv):
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
