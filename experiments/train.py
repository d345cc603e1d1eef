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

The flags, the config and the workdir are checked before CLRS (and so
TensorFlow) is imported: a bad flag is refused in seconds, and
``--help`` lists only these flags and absl's.
"""

# isort: split
from experiments import log_levels  # noqa: F401  (first: before jax)

# isort: split
import sys

from absl import app
from absl import flags
from absl import logging

from deq_clrs.training import preflight
from experiments import cli
from experiments import config_files

try:
  _FLAGS = cli.define_train_flags(flags.FLAGS)
except (AttributeError, KeyError):  # ml_collections: an unknown field.
  cli.fail(config_files.config_field_error(sys.argv,
                                           cli.DEFAULT_TRAIN_CONFIG))
FLAGS = flags.FLAGS


def config_from_flags():
  """The config file's config with the named flags applied, checked without
  CLRS (:func:`deq_clrs.training.preflight.check_config`).

  Raises:
    ValueError: a flag that does not fit the others.
  """
  config = _FLAGS.config()
  cli.check_settings_fit_model(_FLAGS.config_fields_given(),
                               list(cli.given_overrides(_FLAGS.named)),
                               config)
  preflight.check_config(config)
  return config


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  try:
    config = config_from_flags()
    preflight.prepare_workdir(_FLAGS.workdir.value)
  except ValueError as e:
    cli.fail(e)
  # Only now CLRS and TensorFlow: quiet first, so that TensorFlow's start-up
  # noise is hidden (see experiments.quiet).
  # pylint: disable=g-import-not-at-top
  from experiments import quiet  # noqa: F401

  # isort: split
  from deq_clrs import training
  from deq_clrs.training import parallel
  # pylint: enable=g-import-not-at-top
  training.quiet_orbax_logs()
  # Before anything starts JAX's backend.
  parallel.initialize_distributed(_FLAGS.coordinator_address.value,
                                  _FLAGS.num_processes.value,
                                  _FLAGS.process_id.value)
  cli.log_devices()  # After the checks: a refused flag prints one line.
  logging.info('config:\n%s', config)
  try:
    training.train_and_evaluate(config, _FLAGS.workdir.value)
  except training.UserError as e:
    cli.fail(e)


if __name__ == '__main__':
  app.run(main, flags_parser=cli.config_flags_parser(cli.DEFAULT_TRAIN_CONFIG))
