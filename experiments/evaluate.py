"""Scores a saved checkpoint on chosen test sizes, without training.

  python -m experiments.evaluate --workdir=/tmp/dear_bfs --test_sizes=64,128

Writes ``<workdir>/eval_results.json`` (or ``--output``); the logic is
:func:`deq_clrs.training.evaluate_checkpoint`.
"""

# isort: split
from experiments import quiet  # noqa: F401  (first: before TensorFlow)

# isort: split
from absl import app
from absl import flags

from deq_clrs import training
from experiments import cli

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training run\'s workdir.',
                               required=True)
_TEST_SIZES = flags.DEFINE_list('test_sizes', None,
                                'Graph sizes (default: the run\'s).')
_WHICH = flags.DEFINE_enum('params', 'best', ['best', 'last'],
                           'Best-by-validation or last parameters.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: last).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Dataset cache (default: '
                                'the run\'s).')
_OUTPUT = flags.DEFINE_string('output', None, 'Output JSON path.')
# Equilibrium runs only: evaluate with other solver settings, e.g. a looser
# tolerance for speed (accuracy against speed).
_REL_TOL = flags.DEFINE_float('rel_tol', None, 'Relative tolerance.')
_ABS_TOL = flags.DEFINE_float('abs_tol', None, 'Absolute tolerance.')
_EVAL_MAX_ITER = flags.DEFINE_integer('eval_max_iter', None,
                                      'Iteration cap per graph.')
_SOLVER = flags.DEFINE_string('solver', None, 'anderson | fixed_point.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  training.quiet_orbax_logs()
  cli.log_devices()
  try:
    sizes = [int(n) for n in _TEST_SIZES.value or []]
  except ValueError:
    raise app.UsageError(
        f'--test_sizes must be integers, got {_TEST_SIZES.value}') from None
  overrides = {name: flag.value for name, flag in (
      ('rel_tol', _REL_TOL), ('abs_tol', _ABS_TOL),
      ('eval_max_iter', _EVAL_MAX_ITER), ('solver', _SOLVER))
               if flag.value is not None}
  try:
    training.evaluate_checkpoint(
        _WORKDIR.value, sizes, data_dir=_DATA_DIR.value, which=_WHICH.value,
        step=_STEP.value, output=_OUTPUT.value, solver_overrides=overrides)
  except training.UserError as e:
    cli.fail(e)
  except ValueError as e:
    raise app.UsageError(str(e)) from None


if __name__ == '__main__':
  app.run(main)
