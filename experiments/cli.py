"""What the entry points share: one-line errors and config-field checks.

A problem with the user's input or files ends the program with one line,
``error: <what is wrong and what to do>``, exit status 1, no traceback.
"""

from __future__ import annotations

import collections
import difflib
import importlib.util
import re
from collections.abc import Callable
from collections.abc import Sequence
from typing import NoReturn

import ml_collections
from absl import app
from absl import logging


def fail(message: object) -> NoReturn:
  """Ends the program with ``error: <message>`` on stderr and status 1."""
  raise SystemExit(f'error: {message}')


def log_devices() -> None:
  """Logs once which devices JAX computes on (this process and all)."""
  import jax  # pylint: disable=g-import-not-at-top  (report needs no JAX)
  kinds = collections.Counter(d.device_kind for d in jax.local_devices())
  logging.info('JAX computes on %s (backend %s; %d local / %d global '
               'devices, process %d of %d)',
               ', '.join(f'{n} x {k}' for k, n in sorted(kinds.items())),
               jax.default_backend(), jax.local_device_count(),
               jax.device_count(), jax.process_index(), jax.process_count())


def _config_file(argv: Sequence[str], default_file: str) -> tuple[str, str]:
  """The ``--config`` file of a command line and its ``:argument``."""
  path = default_file
  for arg in argv:
    match = re.match(r'^--?config=(.*)$', arg)
    if match:
      path = match.group(1)
  path, _, argument = path.partition(':')
  return path, argument


def load_config_file(path: str, argument: str = ''
                     ) -> ml_collections.ConfigDict:
  """``get_config()`` of an ml_collections config file."""
  spec = importlib.util.spec_from_file_location('_checked_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(argument) if argument else module.get_config()


def field_problem(config: ml_collections.ConfigDict,
                  path: str) -> str | None:
  """Why ``--config.<path>`` names no field of ``config`` (None: it does).

  The message names the first unknown part, the closest valid name and the
  valid names at that level (sub-configs marked ``.*``).
  """
  node = config
  parts = path.split('.')
  for i, part in enumerate(parts):
    if isinstance(node, ml_collections.ConfigDict) and part in node:
      node = node[part]
      continue
    parent = '.'.join(['config', *parts[:i]])
    if not isinstance(node, ml_collections.ConfigDict):
      return (f'unknown config field --config.{path}: {parent} is a value, '
              f'not a group of fields')
    names = sorted(node.keys())
    close = difflib.get_close_matches(part, names, n=1)
    hint = f' (did you mean --{parent}.{close[0]}?)' if close else ''
    valid = ', '.join(
        f'{k}.*' if isinstance(node[k], ml_collections.ConfigDict) else k
        for k in names)
    return (f'unknown config field --config.{path}{hint}; the fields of '
            f'{parent} are: {valid}')
  return None


def config_field_error(argv: Sequence[str], default_file: str) -> str:
  """The message for ``--config.<field>`` overrides the config lacks."""
  path, argument = _config_file(argv, default_file)
  config = load_config_file(path, argument)
  problems = []
  for arg in argv:
    match = re.match(r'^--?(?:no)?config\.([^=]+)', arg)
    if match:
      problem = field_problem(config, match.group(1))
      if problem:
        problems.append(problem)
  return '; '.join(problems) or 'a --config.<field> override failed'


def config_flags_parser(default_file: str
                        ) -> Callable[[list[str]], list[str]]:
  """absl's flag parser, with a one-line error for an unknown
  ``--config.<field>`` (ml_collections raises AttributeError or KeyError when
  ``--config=<file>`` is given; without it, at flag definition, where
  :func:`config_field_error` is called directly)."""
  def parse(argv: list[str]) -> list[str]:
    try:
      return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError):
      fail(config_field_error(argv, default_file))
  return parse

