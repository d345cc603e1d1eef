"""Shared pytest set-up: the ``slow`` marker runs only with ``--runslow``."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')

import pytest  # noqa: E402


def pytest_addoption(parser):
  parser.addoption('--runslow', action='store_true', default=False,
                   help='also run tests marked slow')


def pytest_collection_modifyitems(config, items):
  if config.getoption('--runslow'):
    return
  skip = pytest.mark.skip(reason='slow: run with --runslow')
  for item in items:
    if 'slow' in item.keywords:
      item.add_marker(skip)


@pytest.fixture(scope='session', autouse=True)
def compilation_cache(tmp_path_factory):
  """A persistent XLA cache for the session: the tests build many models
  with identical programs, and each new model would otherwise recompile."""
  import jax
  jax.config.update('jax_compilation_cache_dir',
                    str(tmp_path_factory.mktemp('xla_cache')))
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  jax.config.update('jax_persistent_cache_min_entry_size_bytes', 0)


@pytest.fixture(autouse=True)
def absl_log_level():
  """Restores the ``absl`` logger's level after each test.

  Parsing absl flags in-process (experiments/cli_test.py) sets that level
  from ``--verbosity`` (WARNING by default), which then hid the INFO lines
  later tests in the same worker read from ``caplog``.
  """
  import logging
  logger = logging.getLogger('absl')
  level = logger.level
  yield
  logger.setLevel(level)
