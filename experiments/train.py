"""Trains and tests DEAR or a NAR baseline on one CLRS algorithm.

This file is short on purpose (as in the Flax examples): flags become a
config, and the logic lives in :mod:`deq_clrs.training`, where it can be
imported and tested. Example::

  python -m experiments.train --algorithm=bfs --model=dear \\
      --workdir=/tmp/dear_bfs

Every field of ``experiments/configs/default.py`` can also be set with
``--config.<field>=...``; the named flags below override the config.
Rerunning the same command resumes from the workdir's last checkpoint.
"""

# isort: split
from experiments import quiet  # noqa: F401  (first: before TensorFlow)

# isort: split
import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from deq_clrs import training
from deq_clrs.training import parallel
from experiments import cli
from experiments.configs import default

_DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), 'configs',
                               'default.py')

_WORKDIR = flags.DEFINE_string('workdir', None, 'Directory for checkpoints, '
                               'metrics and results.json.', required=True)
try:
  config_flags.DEFINE_config_file(
      'config', _DEFAULT_CONFIG, 'Config file (ml_collections); its fields '
      'are set with --config.<field>=value (see experiments/configs/'
      'default.py).')
except (AttributeError, KeyError):  # ml_collections: an unknown field.
  cli.fail(cli.config_field_error(sys.argv, _DEFAULT_CONFIG))

# The named flags: a short list of config fields, typed by the default
# config's values; not given (None), the config's value stays.
_NAMED = cli.define_override_flags(default.get_config(), {
    'algorithm': 'CLRS-30 algorithm name, e.g. bfs.',
    'model': 'dear | nar (true steps, no hints) | nar_lt (learned '
             'termination) | nar_hints (CLRS hints).',
    'processor': 'dear: deq_mpnn | deq_triplet_mpnn; nar*: mpnn | '
                 'triplet_mpnn | clrs:<kind> (e.g. clrs:triplet_gmpnn).',
    'data_dir': 'Cache of generated datasets.',
    'hidden_size': 'Latent size.', 'batch_size': 'Graphs per step.',
    'train_steps': 'Training steps.', 'seed': 'Initialisation and batch seed.',
    'test_samples': 'Graphs per test set.',
    'test_sizes': 'Test graph sizes, e.g. 64,128 (default 64).',
    'learning_rate': 'Adam learning rate.',
    # Options of the equilibrium solver: only meaningful with --model=dear.
    'deq.solver': 'anderson | fixed_point.',
    'deq.backward': 'phantom | implicit | unrolled.',
    'deq.max_iter': 'Training iteration cap.',
    'deq.eval_max_iter': 'Evaluation iteration cap.',
    'deq.rel_tol': 'Relative residual tolerance (0 disables).',
    'deq.abs_tol': 'Absolute residual tolerance (0 disables).',
    'deq.jac_reg_weight': 'Weight of the Jacobian regulariser (0 disables).',
})
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None,
    'Multi-host: host:port of process 0. Without it, SLURM (several tasks) '
    'and TPU pod environments are detected by JAX.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'Multi-host: number of processes.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   'Multi-host: this process\'s index.')
FLAGS = flags.FLAGS


def config_from_flags():
  """The config file's config with the named flags applied.

  Raises:
    ValueError: a flag that does not fit the others.
  """
  config = FLAGS.config.copy_and_resolve_references()
  overrides = cli.given_overrides(_NAMED)
  config.update_from_flattened_dict(overrides)
  cli.check_equilibrium_only(
      [path[len('deq.'):] for path in overrides if path.startswith('deq.')],
      config)
  training.check_config(config)
  return config


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  training.quiet_orbax_logs()
  # Before anything starts JAX's backend.
  parallel.initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value,
                                  _PROCESS_ID.value)
  cli.log_devices()
  try:
    config = config_from_flags()
  except ValueError as e:
    raise app.UsageError(str(e)) from None
  logging.info('config:\n%s', config)
  try:
    training.train_and_evaluate(config, _WORKDIR.value)
  except training.UserError as e:
    cli.fail(e)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.config_flags_parser(_DEFAULT_CONFIG))
