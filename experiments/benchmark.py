"""Benchmarks DEAR against step-by-step models: time, memory, iterations.

    python -m experiments.benchmark --algorithms=insertion_sort,dfs \\
        --sizes=16,64 --repeats=3 --output=benchmark.json

Everything is measured in one run on one machine with the same shapes and
batch size; the logic lives in :mod:`deq_clrs.measure.speed` (and
:mod:`deq_clrs.measure.gradient_agreement` for the gradients).

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

from deq_clrs.measure import gradient_run
from deq_clrs.measure import speed
from deq_clrs.training import progress
from experiments import cli

# Named, typed and defaulted by the fields of the configs.
_BENCHMARK = cli.define_dataclass_flags(speed.BenchmarkConfig, {
    'algorithms': 'CLRS algorithms to benchmark.',
    'sizes': 'Graph sizes (nodes) for inference.',
    'train_size': 'Graph size of the training step.',
    'batch_size': 'Graphs per batch.',
    'hidden_size': 'Latent width.',
    'repeats': 'Timed calls per measurement.',
    'models': 'Models to measure.',
    'max_iter': 'DEAR training cap.',
    'eval_max_iter': 'DEAR evaluation cap.',
    'rel_tol': 'DEAR relative tolerance.',
    'memory_caps': 'DEAR training caps at which training-step memory is '
                   'compared.',
    'seed': 'Data and parameter seed.',
})
_GRADIENT = flags.DEFINE_bool(
    'gradient_agreement', False,
    'Also compare the 1-step phantom gradient of a trained DEAR cell with '
    'the implicit gradient at a tightly converged fixed point.')
# --gradient_<field>; the seed is --seed.
_GRADIENT_CONFIG = cli.define_dataclass_flags(
    gradient_run.GradientAgreementConfig, {
        'steps': 'Training steps of that DEAR cell.',
        'algorithm': 'CLRS algorithm of that DEAR cell.',
        'size': 'Nodes per graph of the batch the gradients are compared on '
                '(8 unseen graphs).',
        'workdir': 'Load the DEAR cell from this experiments/train.py '
                   'workdir (best parameters) instead of training one.',
    }, prefix='gradient_')
_CACHE = flags.DEFINE_string(
    'compilation_cache_dir', '',
    "JAX's persistent compilation cache for the benchmark ('' = off, the "
    'default: with it, a rerun loads its programs and the "compile s" '
    'column measures loading, not compiling).')
_PROFILE = flags.DEFINE_string(
    'profile_dir', '',
    'Write a jax.profiler trace of the speed and memory measurements here '
    "(view it with TensorBoard's profile plugin, XProf or Perfetto; "
    "docs/profiling.md). Tracing slows the steps: '' (the default) for "
    'timings.')
_OUTPUT = flags.DEFINE_string('output', 'benchmark.json',
                              'Where to write the JSON results; the markdown '
                              'table goes beside it (.md).')


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  try:
    config = speed.BenchmarkConfig(**cli.dataclass_values(_BENCHMARK))
    gradient = gradient_run.GradientAgreementConfig(
        **cli.dataclass_values(_GRADIENT_CONFIG),
        seed=config.seed) if _GRADIENT.value else None
  except ValueError as e:
    cli.fail(e)
  # Before measuring, so that the results are not lost at the end.
  try:
    speed.prepare_output(_OUTPUT.value)
  except OSError as e:
    cli.fail(f'cannot write --output={_OUTPUT.value} ({e.strerror or e}); '
             f'choose a file in a folder you can write to')
  cli.log_devices()
  progress.enable_compilation_cache(_CACHE.value)
  with progress.Heartbeat() as heartbeat:
    def log(*args):
      logging.info(*args)
      heartbeat.beat()
    heartbeat.phase('benchmarking (each model and shape compiles first)')
    results = speed.run(config, log=log, gradient=gradient,
                        profile_dir=_PROFILE.value)
  with open(_OUTPUT.value, 'w') as f:
    json.dump(results, f, indent=2)
  table = speed.format_table(results)
  markdown = os.path.splitext(_OUTPUT.value)[0] + '.md'
  with open(markdown, 'w') as f:
    f.write(table + '\n')
  print(table)
  print(f'wrote {_OUTPUT.value} and {markdown}')


if __name__ == '__main__':
  app.run(main)
