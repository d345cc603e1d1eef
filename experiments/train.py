"""Trains and tests DEAR or a NAR baseline on one CLRS algorithm.

This file is short on purpose (as in the Flax examples): flags become a
config, and the logic lives in :mod:`deq_clrs.training`, where it can be
imported and tested. Example::

  python -m experiments.train --algorithm=bfs --model=dear \\
      --workdir=/tmp/dear_bfs

Every field of ``experiments/configs/default.py`` can also be set with
``--config.<field>=...``; the named flags (``--algorithm``, ``--seed``,
``--rel_tol``, ...: ``cli.TRAIN_NAMED_FLAGS``) override the config.
Rerunning the same command resumes from the workdir's last checkpoint.
"""

# isort: split
from experiments import quiet  # noqa: F401  (first: before TensorFlow)

# isort: split
import sys

from absl import app
from absl import flags
from absl import logging

from deq_clrs import training
from deq_clrs.training import parallel
from experiments import cli

try:
  _FLAGS = cli.define_train_flags(flags.FLAGS)
except (AttributeError, KeyError):  # ml_collections: an unknown field.
  cli.fail(cli.config_field_error(sys.argv, cli.DEFAULT_TRAIN_CONFIG))
FLAGS = flags.FLAGS


def config_from_flags():
  """The config file's config with the named flags applied.

  Raises:
    ValueError: a flag that does not fit the others.
  """
  config = _FLAGS.config()
  cli.check_settings_fit_model(_FLAGS.config_fields_given(),
                               list(cli.given_overrides(_FLAGS.named)),
                               config)
  training.check_config(config)
  return config


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  training.quiet_orbax_logs()
  # Before anything starts JAX's backend.
  parallel.initialize_distributed(_FLAGS.coordinator_address.value,
                                  _FLAGS.num_processes.value,
                                  _FLAGS.process_id.value)
  try:
    config = config_from_flags()
  except ValueError as e:
    cli.fail(e)
  cli.log_devices()  # After the checks: a refused flag prints one line.
  logging.info('config:\n%s', config)
  try:
    training.train_and_evaluate(config, _FLAGS.workdir.value)
  except training.UserError as e:
    cli.fail(e)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.config_flags_parser(cli.DEFAULT_TRAIN_CONFIG))
