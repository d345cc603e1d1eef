"""Scores a saved checkpoint on chosen test sizes, without training.

  python -m experiments.evaluate --workdir=/tmp/dear_bfs --test_sizes=64,128
  python -m experiments.evaluate --workdir=/tmp/lt_bfs --read_at=true_length

Writes ``<workdir>/eval_results.json`` (or ``--output``); the logic is
:func:`deq_clrs.training.evaluate_checkpoint`. CLRS (and so TensorFlow) is
imported after the flags are parsed: a bad flag is refused in seconds.
"""

# isort: split
from experiments import log_levels  # noqa: F401  (first: before jax)

# isort: split
from absl import app
from absl import flags

from experiments import cli
from experiments.configs import default

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training run\'s workdir.',
                               required=True)
_TEST_SIZES = cli.define_number_list('test_sizes', None,
                                     'Graph sizes (default: the run\'s).')
_WHICH = flags.DEFINE_enum('params', 'best', ['best', 'last'],
                           'Best-by-validation or last parameters.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint step (default: last).')
_DATA_DIR = flags.DEFINE_string('data_dir', None, 'Dataset cache (default: '
                                'the run\'s).')
_OUTPUT = flags.DEFINE_string('output', None, 'Output JSON path.')
_EVAL_BATCH_SIZE = flags.DEFINE_integer(
    'eval_batch_size', None, 'Graphs per evaluation call (default: the '
    'run\'s); fewer need less memory at large test sizes.', lower_bound=1)
_READ_AT = flags.DEFINE_enum(
    'read_at', 'stop', ['stop', 'true_length'], 'nar_lt runs only: read the '
    'predictions where the model stops (its score) or at the true number of '
    'steps (a diagnostic: it is told the steps).')
_EVAL_SETS = flags.DEFINE_enum(
    'eval_sets', None, ['own', 'reference'], 'Validation and test graphs '
    '(default: the run\'s): ours, or the authors\' DEAR recipe, to score '
    'on the graphs their code is scored on.')
# Equilibrium runs only: evaluate with other solver settings, e.g. a looser
# tolerance for speed (accuracy against speed). Typed by the config's fields;
# not given, the run's value stays.
_SOLVER = cli.define_override_flags(default.get_config(), {
    'deq.rel_tol': 'Relative tolerance.',
    'deq.abs_tol': 'Absolute tolerance.',
    'deq.eval_max_iter': 'Iteration cap per graph.',
    'deq.solver': 'anderson | anderson_growing | fixed_point.',
    'deq.return_best': 'A graph that meets no tolerance returns its '
                       'lowest-residual iterate (still not converged).',
    'deq.noise_in_eval': 'Add the map\'s noise at evaluation.',
    'deq.phantom_in_eval': 'Apply the phantom step(s) at evaluation.',
})


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  # Only now CLRS and TensorFlow, quiet first (see experiments.quiet).
  # pylint: disable=g-import-not-at-top
  from experiments import quiet  # noqa: F401

  # isort: split
  from deq_clrs import training
  # pylint: enable=g-import-not-at-top
  training.quiet_orbax_logs()
  cli.log_devices()
  overrides = {path[len('deq.'):]: value
               for path, value in cli.given_overrides(_SOLVER).items()}
  try:
    training.evaluate_checkpoint(
        _WORKDIR.value, _TEST_SIZES.value, data_dir=_DATA_DIR.value,
        which=_WHICH.value, step=_STEP.value, output=_OUTPUT.value,
        solver_overrides=overrides, eval_batch_size=_EVAL_BATCH_SIZE.value,
        read_at=_READ_AT.value, eval_sets=_EVAL_SETS.value)
  except training.UserError as e:
    cli.fail(e)
  except ValueError as e:
    cli.fail(e)


if __name__ == '__main__':
  app.run(main)
