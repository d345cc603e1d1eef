"""Turns one finished run of the authors' code into a parity record.

    python experiments/reference/record.py \\
        $REF_ROOT/runs/bellman_ford.dear.seed0.raw.json

reads the harness's raw JSON and the run's log beside it (``.log`` for
``.raw.json``) and writes ``results/parity/reference/<algorithm>.<model>.
seed<S>.json`` in the record format ``experiments.report_parity`` reads
(``--out`` elsewhere, ``--out=-`` to print). Any Python 3.10+ runs it: the
package versions are asked of the reference's venv (``--python``, default
``$REF_ROOT/venv/bin/python``) and the commits of its checkouts.

The test score is their own logged metric from ``trainer.test(ckpt_path=
'best')``: ``test/acc/<algorithm>/<output>`` (e.g. ``pi_index`` for
bellman_ford's ``pi``), the mean over outputs where an algorithm has
several (their metric for a scalar output is its squared error: read
``test_score_outputs`` there). Iterations are the DEQ solver's per test
graph (none for NAR).
"""

import argparse
import json
import os
import pathlib
import re
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = {'configs/deq.yaml': 'dear', 'configs/baseline.yaml': 'nar'}
PACKAGES = ('torch', 'torch_geometric', 'dm-clrs', 'pytorch_lightning',
            'torchmetrics', 'numpy', 'jax', 'wandb', 'tensorflow-cpu',
            'protobuf', 'torchdeq')
# Asked of the reference's interpreter: the installed versions.
VERSIONS = '''
import importlib.metadata as metadata
import json
import sys
versions = {}
for name in json.loads(sys.argv[1]):
  try:
    versions[name] = metadata.version(name)
  except metadata.PackageNotFoundError:
    versions[name] = None
versions['python'] = sys.version.split()[0]
print(json.dumps(versions))
'''
STEP_LINE = re.compile(r'\[harness\] step (\d+) epoch (\d+) loss \S+'
                       r'(?: [\d.]+ s/step)? wall (\d+)s cpu (\d+)s')
TEST_SET = re.compile(r"CLRS\((\d+)\) \(num nodes: (\d+)\) with kwargs\s*"
                      r"\{'split': 'test'\}")
SELECTION = ('lowest val/loss/average_loss (their ModelCheckpoint, '
             'save_top_k=1, mode=min), checked after every epoch and at '
             'step max_steps (the harness)')
STAND_INS = ('torch_scatter and torch_sparse stand-ins '
             '(experiments/reference/stubs)')


def _option(argv, name):
  """The value of ``name`` in the harness's argv (docopt style)."""
  for i, arg in enumerate(argv):
    if arg == name and i + 1 < len(argv):
      return argv[i + 1]
    if arg.startswith(name + '='):
      return arg.split('=', 1)[1]
  raise SystemExit(f'record.py: the run has no {name} in {argv}')


def _run(raw):
  """Algorithm, model and seed from the harness's argv."""
  argv = raw['argv']
  config = _option(argv, '--config-path')
  if config not in CONFIGS:
    raise SystemExit(f'record.py: unknown config {config} (expected one '
                     f'of {sorted(CONFIGS)})')
  algorithms = _option(argv, '--algorithms').split(',')
  if len(algorithms) != 1:
    raise SystemExit(f'record.py: one algorithm per run, not {algorithms}')
  return algorithms[0], CONFIGS[config], int(_option(argv, '--seed'))


def _output_scores(metrics, algorithm):
  """Their logged per-output test metrics: ``{output: value}``."""
  prefix = f'test/acc/{algorithm}/'
  scores = {}
  for key, value in (metrics or {}).items():
    name = key[len(prefix):]
    if not key.startswith(prefix) or '# steps' in name:
      continue
    if name.startswith('continuation/') or name.endswith('_temporal'):
      continue
    scores[name] = value
  return scores


def _score(returned, algorithm):
  """(score, per-output scores, all metrics) of a ``trainer.test`` return
  value (a list with one dict)."""
  metrics = (returned or [{}])[0]
  scores = _output_scores(metrics, algorithm)
  score = statistics.fmean(scores.values()) if scores else None
  return score, scores, metrics


def _timing(raw, log):
  """Wall and CPU time of the run, from the raw record and the log."""
  timing = {'wall_s': raw.get('wall_s_total'),
            'wall_s_fit': (raw.get('fit_end') or {}).get('wall_s'),
            'cpu_s_main_process': raw.get('cpu_s_self')}
  for name in ('real', 'user', 'sys'):
    found = re.search(rf'^{name}\s+(\d+)m([\d.]+)s', log, re.M)
    timing[f'time_{name}_s'] = (None if found is None else
                                int(found[1]) * 60 + float(found[2]))
  rows = [tuple(int(x) for x in m) for m in STEP_LINE.findall(log)]
  cpu, wall = [], []
  for a, b in zip(rows, rows[1:]):
    # Steps of one epoch only: no validation inside the interval.
    if a[1] == b[1] and b[0] - a[0] >= 10:
      cpu.append((b[3] - a[3]) / (b[0] - a[0]))
      wall.append((b[2] - a[2]) / (b[0] - a[0]))
  timing['cpu_s_per_step_median'] = (statistics.median_high(cpu)
                                     if cpu else None)
  timing['wall_s_per_step_median'] = (statistics.median_high(wall)
                                      if wall else None)
  return timing


def _environment(log):
  """The environment run.sh printed before starting the harness."""
  head = re.split(r'^\+ ', log, maxsplit=1, flags=re.M)[0]
  return dict(re.findall(r'^([A-Z][A-Z0-9_]*)=(.*)$', head, re.M))


def _test_set(log, default_size):
  """(nodes per graph, graphs) of their test set, from their log line."""
  found = TEST_SET.findall(log)
  if not found:
    return default_size, None
  graphs, nodes = found[-1]
  return int(nodes), int(graphs)


def _commit(checkout):
  try:
    return subprocess.run(
        ['git', '-C', str(checkout), 'rev-parse', 'HEAD'], check=True,
        capture_output=True, text=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return None


def _versions(python):
  try:
    out = subprocess.run([str(python), '-c', VERSIONS,
                          json.dumps(PACKAGES)], check=True,
                         capture_output=True, text=True).stdout
  except (OSError, subprocess.CalledProcessError) as e:
    raise SystemExit(f'record.py: cannot ask {python} for its package '
                     f'versions ({e}); pass --python') from e
  return json.loads(out)


def _command(algorithm, model, seed, raw):
  steps = '' if raw['max_steps'] == 5000 else f'MAX_STEPS={raw["max_steps"]} '
  return f'{steps}experiments/reference/run.sh {algorithm} {model} {seed}'


def build(raw, log, ref_root, python, default_size=64, note=None):
  """The parity record of a run (``raw``: the harness's JSON; ``log``:
  the run's log text)."""
  algorithm, model, seed = _run(raw)
  env = _environment(log)
  if env.get('SMOKE') == '1':
    raise SystemExit('record.py: a smoke run (SMOKE=1) is no record')
  score, scores, metrics = _score(raw.get('final_test_metrics'), algorithm)
  if score is None:
    raise SystemExit(f'record.py: no test/acc/{algorithm}/... metric in '
                     'the run (did its final test run?)')
  size, graphs = _test_set(log, default_size)
  untrained, _, _ = _score(raw.get('initial_test_metrics'), algorithm)
  return {
      'implementation': 'reference',
      'algorithm': algorithm,
      'model': model,
      'seed': seed,
      'train_steps': raw['steps_trained'],
      'test_size': size,
      'test_graphs': graphs,
      'test_score': score,
      'test_score_outputs': scores,
      'test_score_recomputed': raw.get('final_test_acc_mean_of_graphs'),
      'iterations_mean': raw.get('final_test_nstep_mean'),
      'iterations_max': raw.get('final_test_nstep_max'),
      'untrained_test_score': untrained,
      'test_metrics': metrics,
      'max_steps': raw['max_steps'],
      'selected_step': raw.get('best_checkpoint_global_step'),
      'selected_epoch': raw.get('best_checkpoint_epoch'),
      'selected_val_loss': raw.get('best_val_loss'),
      'selection': SELECTION,
      'timing': _timing(raw, log),
      'versions': _versions(python),
      'dear_commit': _commit(ref_root / 'DEAR'),
      'torchdeq_commit': _commit(ref_root / 'torchdeq'),
      'stand_ins': STAND_INS,
      'command': _command(algorithm, model, seed, raw),
      'harness_argv': raw['argv'],
      'env': env,
  } | ({'note': note} if note else {})


def _parse(argv):
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('raw', type=pathlib.Path,
                      help='the harness JSON: runs/<name>.raw.json')
  parser.add_argument('--log', type=pathlib.Path,
                      help='the run log (default: <name>.log beside it)')
  parser.add_argument('--out', help='where the record goes (default: '
                      'results/parity/reference/<name>.json; - prints it)')
  parser.add_argument('--ref-root', type=pathlib.Path,
                      help='setup.sh target holding DEAR/ and torchdeq/ '
                      '(default: $REF_ROOT, else the folder above runs/)')
  parser.add_argument('--python', type=pathlib.Path,
                      help='the reference venv interpreter (default: '
                      '<ref-root>/venv/bin/python)')
  parser.add_argument('--test-size', type=int, default=64,
                      help='test graph size when the log does not say')
  parser.add_argument('--note', help='a line on how the run was made')
  return parser.parse_args(argv)


def main(argv):
  args = _parse(argv)
  name = args.raw.name.removesuffix('.raw.json')
  log_path = args.log or args.raw.with_name(name + '.log')
  ref_root = args.ref_root or pathlib.Path(
      os.environ.get('REF_ROOT') or args.raw.resolve().parent.parent)
  python = args.python or ref_root / 'venv' / 'bin' / 'python'
  raw = json.loads(args.raw.read_text())
  record = build(raw, log_path.read_text(), ref_root, python,
                 args.test_size, args.note)
  text = json.dumps(record, indent=1) + '\n'
  if args.out == '-':
    sys.stdout.write(text)
    return
  out = pathlib.Path(args.out or REPO / 'results' / 'parity' / 'reference'
                     / f'{record["algorithm"]}.{record["model"]}.seed'
                     f'{record["seed"]}.json')
  out.parent.mkdir(parents=True, exist_ok=True)
  out.write_text(text)
  print(f'{out}: test_score {record["test_score"]:.4f} at '
        f'{record["test_size"]} nodes, iterations {record["iterations_mean"]}'
        f', step {record["selected_step"]} of {record["train_steps"]}')


if __name__ == '__main__':
  main(sys.argv[1:])
