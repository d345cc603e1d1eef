"""Finding and reading the results files of ``experiments.train`` runs,
and pooling them into the report's rows (:func:`group`).

Without flags or plotting, so that both the report (``experiments.report``)
and the sweep launcher (``launch.submit --done``) can read runs and their
report copies and tell two files of one run apart from two runs.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
from typing import Any

from deq_clrs.training import run_config

# Config fields that do not change what a run learns or scores: runs that
# differ only in these (and the seed) are seeds of one row.
BOOKKEEPING = frozenset({'seed', 'data_dir', 'log_every', 'test_sizes',
                         'test_every', 'checkpoint_every', 'keep_checkpoints',
                         'tensorboard', 'compilation_cache_dir',
                         'prefetch_batches'})
# What every results.json of experiments.train has (older ones included).
REQUIRED = ('algorithm', 'model', 'seed', 'config', 'val_score',
            'test_scores')


RESULTS = 'results.json'
# The report's own copies (see experiments.report.write_report).
COPY_SUFFIX = '.results.json'


#: The project's own results folder, which a search of a folder above it
#: leaves out (:func:`find_results` with ``run_folders_only``).
PROJECT_RESULTS = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'results')
CONFIG = 'config.json'
NO_CONFIG = f'no {CONFIG} beside it (not a run folder)'
DEEP_COPY = ('a report copy below the folder searched (copies are read only '
             'from the folder given itself)')
OWN_RESULTS = ("the project's own results folder (give it, or a folder in "
               'it, to read it)')


def _inside(path: str, folder: str) -> bool:
  path, folder = os.path.realpath(path), os.path.realpath(folder)
  return path == folder or path.startswith(folder + os.sep)


def find_results(runs_dir: str, run_folders_only: bool = False
                 ) -> tuple[list[str], list[tuple[str, str]]]:
  """Every ``results.json`` (and report copy, ``*.results.json``) under
  ``runs_dir``, each real file once.

  Symbolic links are followed (a runs folder of links works), but a file
  or folder reached twice (a link to a folder already searched, or a loop)
  is read once.

  Args:
    runs_dir: the folder searched, recursively.
    run_folders_only: read only run folders (a ``results.json`` beside a
      ``config.json``) at any depth and report copies directly in
      ``runs_dir``, and leave out the project's own ``results/`` unless
      ``runs_dir`` is in it, so that a search of a broad folder (``/tmp``,
      the checkout) does not sweep up copies that are not the user's runs.

  Returns:
    ``(paths, skipped)``: paths in a stable order, and ``(path, reason)``
    for each path left out.
  """
  paths, skipped, seen_dirs, seen_files = [], [], set(), {}
  own = run_folders_only and not _inside(runs_dir, PROJECT_RESULTS)
  for folder, dirs, files in os.walk(runs_dir, followlinks=True):
    real = os.path.realpath(folder)
    if real in seen_dirs:
      dirs[:] = []  # Already searched under another name: not again.
    seen_dirs.add(real)
    if own and _inside(folder, PROJECT_RESULTS):
      dirs[:] = []
      skipped.append((folder, OWN_RESULTS))
      continue
    dirs.sort()
    for name in sorted(files):
      if name != RESULTS and not name.endswith(COPY_SUFFIX):
        continue
      path = os.path.join(folder, name)
      reason = _not_a_run_file(folder, name, runs_dir) if (
          run_folders_only) else ''
      real = os.path.realpath(path)
      if not reason and real in seen_files:
        reason = f'the same file as {seen_files[real]}'
      if reason:
        skipped.append((path, reason))
        continue
      seen_files[real] = path
      paths.append(path)
  return paths, skipped


def _not_a_run_file(folder: str, name: str, runs_dir: str) -> str:
  """Why ``folder/name`` is not read by a search of run folders only, or
  ''."""
  if name == RESULTS:
    return '' if os.path.exists(os.path.join(folder, CONFIG)) else NO_CONFIG
  same = os.path.realpath(folder) == os.path.realpath(runs_dir)
  return '' if same else DEEP_COPY


#: The kinds of reason a file is skipped for, by how the reason begins.
SKIP_KINDS = (
    (NO_CONFIG, 'without config.json beside them'),
    (DEEP_COPY, 'report copies below the folder given'),
    (OWN_RESULTS, "the project's own results/"),
    ('the same file as', 'reached twice through links'),
    ('unreadable', 'unreadable'),
    ('not a results file', 'not results of experiments.train'),
    ('not merged', 'eval_results.json scored unlike their run'),
    ('the same config and seed as', 'another file of a run already read'),
)


def skipped_summary(skipped: list[tuple[str, str]]) -> str:
  """One line: how many files were skipped and why, e.g. ``skipped 3: 2
  without config.json beside them, 1 unreadable``; '' for none."""
  if not skipped:
    return ''
  counts: dict[str, int] = {}
  for _, reason in skipped:
    kind = next((k for start, k in SKIP_KINDS if reason.startswith(start)),
                reason)
    counts[kind] = counts.get(kind, 0) + 1
  return f'skipped {len(skipped)}: ' + ', '.join(
      f'{n} {kind}' for kind, n in counts.items())


def config_key(run: dict[str, Any]) -> str:
  """The run's config without the seed and bookkeeping fields, as JSON
  (settings added after the run was made count at their value then)."""
  config = run_config.filled(run['config'])
  config = {k: v for k, v in config.items() if k not in BOOKKEEPING}
  return json.dumps(config, sort_keys=True)


def load_folder(folder: str, required: tuple[str, ...]
                ) -> tuple[list[dict[str, Any]], list[str]]:
  """The JSON objects of ``folder``'s ``*.json`` files (not recursive, in
  name order) that have every key of ``required``, and the names of the
  other ``*.json`` files (unreadable, or not such an object)."""
  found, skipped = [], []
  for name in sorted(os.listdir(folder)):
    if not name.endswith('.json'):
      continue
    try:
      with open(os.path.join(folder, name)) as f:
        data = json.load(f)
    except (OSError, ValueError):
      skipped.append(name)
      continue
    if not isinstance(data, dict) or any(k not in data for k in required):
      skipped.append(name)
      continue
    found.append(data)
  return found, skipped


def load_runs(runs_dir: str, skipped: list[tuple[str, str]] | None = None,
              run_folders_only: bool = False) -> list[dict[str, Any]]:
  """Every results.json under ``runs_dir``, with eval_results.json merged
  (and every report copy, which holds its merged scores already).

  Args:
    runs_dir: searched recursively.
    skipped: if given, ``(path, reason)`` is appended for each results file
      left out: reached twice through links, unreadable, not a training
      run's, or the same config and seed as another file read (of two
      such files the one kept holds all the other does and more, e.g. a
      run scored at a new test size since its report copy was written;
      otherwise the one met first is kept).
    run_folders_only: see :func:`find_results`.
  """
  skipped = [] if skipped is None else skipped
  paths, duplicates = find_results(runs_dir, run_folders_only)
  skipped.extend(duplicates)
  runs, seen = [], {}  # seen: identity -> index into runs.
  for path in paths:
    try:
      with open(path) as f:
        run = json.load(f)
    except (OSError, ValueError) as error:
      skipped.append((path, f'unreadable ({error})'))
      continue
    missing = [k for k in REQUIRED if k not in run] if isinstance(
        run, dict) else list(REQUIRED)
    if missing:
      skipped.append((path, f'not a results file of experiments.train '
                            f'(no {", ".join(missing)})'))
      continue
    if os.path.basename(path) == RESULTS:
      _merge_eval_results(run, path, skipped)
    key = identity(run)
    if key in seen:
      # Two files of one run, most often a report copy and the run it was
      # copied from. The one that holds all the other does and more (a
      # test size scored since the copy was written) is kept, whichever
      # the walk met first; otherwise the first.
      kept = runs[seen[key]]
      held = without_path(kept)
      if run != held and extends(run, held):
        skipped.append((kept['_path'], f'the same config and seed as '
                                       f'{path}, which holds all it does '
                                       f'and more'))
        runs[seen[key]] = {**run, '_path': path}
      else:
        skipped.append((path, f'the same config and seed as '
                              f'{kept["_path"]}'))
      continue
    seen[key] = len(runs)
    runs.append({**run, '_path': path})
  return runs


#: The fields of an eval_results.json merged into its run (by test size).
MERGED = ('test_scores', 'test_scores_per_graph', 'test_loss', 'gt_steps_mean',
          'seconds_per_sample', 'load', 'solver')


def _merge_eval_results(run: dict[str, Any], path: str,
                        skipped: list[tuple[str, str]]) -> None:
  """Merges the test sizes of the ``eval_results.json`` beside ``path``
  (a run's results.json), if there is one, into ``run`` (the run's own
  scores win); one scored unlike the run, or unreadable, is left out and
  said in ``skipped``."""
  extra = os.path.join(os.path.dirname(path), 'eval_results.json')
  if not os.path.exists(extra):
    return
  try:
    with open(extra) as f:
      more = json.load(f)
  except (OSError, ValueError) as error:
    skipped.append((extra, f'unreadable ({error})'))
    more = {}
  unlike = _scored_unlike_the_run(more)
  if unlike:
    skipped.append((extra, f'not merged: scored {unlike}, not as the run '
                           f'itself scores'))
    return
  for key in MERGED:
    if more.get(key):
      run[key] = {**more[key], **(run.get(key) or {})}


def _scored_unlike_the_run(evaluation: dict[str, Any]) -> str:
  """How an eval_results.json was scored unlike its run's own test scores
  (other parameters, solver settings or read point: not a score of the
  run's row), or '' when it was scored the same way."""
  ways = []
  if evaluation.get('params', 'best') != 'best':
    ways.append(f'with the {evaluation["params"]} parameters')
  if evaluation.get('solver_overrides'):
    ways.append(f'with solver settings {evaluation["solver_overrides"]}')
  if evaluation.get('read_at', 'stop') != 'stop':
    ways.append(f'with predictions read at {evaluation["read_at"]!r}')
  return ' and '.join(ways)


def identity(run: dict[str, Any]) -> tuple[str, str, int, str]:
  """What makes a run the one run it is: algorithm, model label, seed and
  config (:func:`config_key`); two files with one identity are one run's."""
  return (run['algorithm'], label(run), run['seed'], config_key(run))


def without_path(run: dict[str, Any]) -> dict[str, Any]:
  """The run as its file holds it: without the ``_path`` load_runs adds."""
  return {k: v for k, v in run.items() if k != '_path'}


def label(run: dict[str, Any]) -> str:
  """The model, with the config's ``tag`` (a variant) if it has one."""
  tag = run['config'].get('tag', '')
  return f'{run["model"]}:{tag}' if tag else run['model']


def copy_name(run: dict[str, Any]) -> str:
  """``<algorithm>.<model label>.seed<seed>.<config hash>.results.json``."""
  digest = hashlib.sha1(config_key(run).encode()).hexdigest()[:8]
  name = (f'{run["algorithm"]}.{label(run)}.seed{run["seed"]}.{digest}'
          f'{COPY_SUFFIX}')
  return name.replace(':', '.').replace(os.sep, '_')


def extends(new: Any, old: Any) -> bool:
  """Whether ``new`` holds everything ``old`` does, unchanged, and maybe more
  (nested dicts compared key by key; any other value must be equal)."""
  if isinstance(old, dict) and isinstance(new, dict):
    return all(k in new and extends(new[k], old[k]) for k in old)
  return new == old


def group(runs: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict]]:
  """(algorithm, row label) -> runs of one config (one per seed).

  Runs are seeds of one row only if their configs agree on everything but
  the seed and bookkeeping fields (:data:`BOOKKEEPING`). Where one
  (algorithm, model) has several configs, each row's label names the
  settings that tell them apart, e.g. ``dear (train_steps=500)``.
  """
  by_config = collections.defaultdict(list)
  for run in runs:
    by_config[(run['algorithm'], label(run),
               config_key(run))].append(run)
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
  """Every test size any of ``runs`` was scored at, in increasing order."""
  return sorted({s for r in runs for s in r['test_scores']}, key=int)
