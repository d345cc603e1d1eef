"""Benchmarks DEAR against step-by-step models: time, memory, iterations.

    python -m experiments.benchmark --algorithms=insertion_sort,dfs \\
        --sizes=16,64 --repeats=3 --output=benchmark.json

Everything is measured in one run on one machine with the same shapes and
batch size; the logic lives in :mod:`deq_clrs.training.benchmarking`.

``--gradient_agreement`` also trains a small DEAR cell (or loads one with
``--gradient_workdir``) and compares its 1-step phantom gradient with the
implicit gradient (cosine similarity); ``--algorithms=`` (empty) skips the
speed and memory measurements:

    python -m experiments.benchmark --algorithms= --gradient_agreement \\
        --gradient_steps=100 --output=gradient.json
"""

# isort: split
from experiments import quiet  # noqa: F401  (first: before TensorFlow)

# isort: split
import json
import os

from absl import app
from absl import flags
from absl import logging

from deq_clrs.training import benchmarking
from experiments import cli

_ALGORITHMS = flags.DEFINE_list('algorithms', ['insertion_sort'],
                                'CLRS algorithms to benchmark.')
_SIZES = flags.DEFINE_list('sizes', ['16', '64'],
                           'Graph sizes (nodes) for inference.')
_TRAIN_SIZE = flags.DEFINE_integer('train_size', 16,
                                   'Graph size of the training step.')
_BATCH = flags.DEFINE_integer('batch_size', 8, 'Graphs per batch.')
_HIDDEN = flags.DEFINE_integer('hidden_size', 64, 'Latent width.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Timed calls per measurement.')
_MODELS = flags.DEFINE_list('models', list(benchmarking.MODELS),
                            'Models to measure.')
_MAX_ITER = flags.DEFINE_integer('max_iter', 40, 'DEAR training cap.')
_EVAL_MAX_ITER = flags.DEFINE_integer('eval_max_iter', 160,
                                      'DEAR evaluation cap.')
_REL_TOL = flags.DEFINE_float('rel_tol', 0.1, 'DEAR relative tolerance.')
_MEMORY_CAPS = flags.DEFINE_list(
    'memory_caps', ['10', '40', '160'],
    'DEAR training caps at which training-step memory is compared.')
_SEED = flags.DEFINE_integer('seed', 0, 'Data and parameter seed.')
_GRADIENT = flags.DEFINE_bool(
    'gradient_agreement', False,
    'Also compare the 1-step phantom gradient of a trained DEAR cell with '
    'the implicit gradient at a tightly converged fixed point.')
_GRADIENT_STEPS = flags.DEFINE_integer(
    'gradient_steps', 300, 'Training steps of that DEAR cell.')
_GRADIENT_ALGORITHM = flags.DEFINE_string(
    'gradient_algorithm', 'bfs', 'CLRS algorithm of that DEAR cell.')
_GRADIENT_SIZE = flags.DEFINE_integer(
    'gradient_size', 12, 'Nodes per graph of the batch the gradients are '
    'compared on (8 unseen graphs).')
_GRADIENT_WORKDIR = flags.DEFINE_string(
    'gradient_workdir', None, 'Load the DEAR cell from this '
    'experiments/train.py workdir (best parameters) instead of training one.')
_OUTPUT = flags.DEFINE_string('output', 'benchmark.json',
                              'Where to write the JSON results; the markdown '
                              'table goes beside it (.md).')


def _ints(name: str, values: list[str]) -> tuple[int, ...]:
  try:
    return tuple(int(v) for v in values)
  except ValueError as e:
    raise app.UsageError(f'--{name} takes integers, got {values}') from e


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    config = benchmarking.BenchmarkConfig(
        algorithms=tuple(_ALGORITHMS.value), sizes=_ints('sizes', _SIZES.value),
        train_size=_TRAIN_SIZE.value, batch_size=_BATCH.value,
        hidden_size=_HIDDEN.value, repeats=_REPEATS.value,
        models=tuple(_MODELS.value), max_iter=_MAX_ITER.value,
        eval_max_iter=_EVAL_MAX_ITER.value, rel_tol=_REL_TOL.value,
        memory_caps=_ints('memory_caps', _MEMORY_CAPS.value), seed=_SEED.value)
    gradient = benchmarking.GradientAgreementConfig(
        algorithm=_GRADIENT_ALGORITHM.value, steps=_GRADIENT_STEPS.value,
        size=_GRADIENT_SIZE.value, seed=_SEED.value,
        workdir=_GRADIENT_WORKDIR.value) if _GRADIENT.value else None
  except ValueError as e:
    raise app.UsageError(str(e)) from e
  # Before measuring, so that the results are not lost at the end.
  try:
    benchmarking.prepare_output(_OUTPUT.value)
  except OSError as e:
    cli.fail(f'cannot write --output={_OUTPUT.value} ({e.strerror or e}); '
             f'choose a file in a folder you can write to')
  cli.log_devices()
  results = benchmarking.run(config, log=logging.info, gradient=gradient)
  with open(_OUTPUT.value, 'w') as f:
    json.dump(results, f, indent=2)
  table = benchmarking.format_table(results)
  markdown = os.path.splitext(_OUTPUT.value)[0] + '.md'
  with open(markdown, 'w') as f:
    f.write(table + '\n')
  print(table)
  print(f'wrote {_OUTPUT.value} and {markdown}')


if __name__ == '__main__':
  app.run(main)
