"""What the entry points share: flags, one-line errors, config checks.

* Flags: :func:`define_number_list` (the one parser of integer and float
  lists), :func:`define_dataclass_flags` (flags whose names, types and
  defaults are a dataclass's fields, so a default is written once, in the
  dataclass) and :func:`define_override_flags` (named flags that override
  fields of an ml_collections config, typed by its values).
* :func:`check_equilibrium_only`: the one check that solver flags are given
  to equilibrium (``dear``) runs only.
* A problem with the user's input or files ends the program with one line,
  ``error: <what is wrong and what to do>``, exit status 1, no traceback.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import importlib.util
import re
import types
import typing
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import NoReturn

import ml_collections
from absl import app
from absl import flags
from absl import logging

# Flags defined through the helpers below belong to the calling entry point
# (its --help lists them), not to this module.
flags.disclaim_key_flags()


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



class NumberListParser(flags.ListParser):
  """Parses ``64,128`` into ``[64, 128]`` (a list of ``kind``)."""

  def __init__(self, kind: type = int):
    super().__init__()
    self.kind = kind

  def parse(self, argument: str | Sequence[Any]) -> list[Any]:
    items = super().parse(list(argument) if isinstance(argument, (
        list, tuple)) else argument)
    try:
      return [self.kind(item) for item in items]
    except (TypeError, ValueError):
      raise ValueError(f'must be {self.kind.__name__}s separated by commas, '
                       f'got {argument!r}') from None

  def flag_type(self) -> str:
    return f'comma separated list of {self.kind.__name__}s'


def define_number_list(name: str, default: Sequence[Any] | None,
                       help_text: str, kind: type = int,
                       flag_values: flags.FlagValues = flags.FLAGS
                       ) -> flags.FlagHolder:
  """A flag ``--name=1,2,3`` whose value is a list of ``kind`` (or None).

  A value that is not a list of ``kind`` is refused when the flags are
  parsed (``flag --name=...: must be ints separated by commas, ...``).
  """
  return flags.DEFINE(NumberListParser(kind), name,
                      None if default is None else list(default), help_text,
                      flag_values=flag_values,
                      serializer=flags.CsvListSerializer(','))


def _define_typed(name: str, kind: Any, default: Any, help_text: str,
                  flag_values: flags.FlagValues) -> flags.FlagHolder:
  """A flag for a value of type ``kind`` (a type or a type hint)."""
  origin, args = typing.get_origin(kind), typing.get_args(kind)
  if origin in (typing.Union, types.UnionType):  # X | None
    (kind,) = [a for a in args if a is not type(None)]
    origin, args = typing.get_origin(kind), typing.get_args(kind)
  if origin in (tuple, list):
    item = args[0]
    if item is str:
      return flags.DEFINE_list(
          name, None if default is None else list(default), help_text,
          flag_values=flag_values)
    return define_number_list(name, default, help_text, item, flag_values)
  define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer,
            float: flags.DEFINE_float, str: flags.DEFINE_string}.get(kind)
  if define is None:
    raise TypeError(f'no flag type for --{name} of type {kind!r}')
  return define(name, default, help_text, flag_values=flag_values)


def define_dataclass_flags(cls: type, helps: Mapping[str, str], *,
                           prefix: str = '',
                           flag_values: flags.FlagValues = flags.FLAGS
                           ) -> dict[str, flags.FlagHolder]:
  """Flags for fields of a dataclass, with the fields' types and defaults.

  Args:
    cls: a dataclass; its field defaults become the flags' defaults, so a
      default is written once, in the dataclass.
    helps: field name -> help text, for the fields that get a flag.
    prefix: prepended to the flag names (``gradient_`` gives
      ``--gradient_steps`` for the field ``steps``).

  Returns:
    Field name -> flag holder; :func:`dataclass_values` reads them back.

  Raises:
    KeyError: a name of ``helps`` is not a field of ``cls``.
  """
  fields = {f.name: f for f in dataclasses.fields(cls)}
  unknown = sorted(set(helps) - set(fields))
  if unknown:
    raise KeyError(f'{cls.__name__} has no field(s) {unknown}')
  hints = typing.get_type_hints(cls)
  return {name: _define_typed(prefix + name, hints[name],
                              fields[name].default, help_, flag_values)
          for name, help_ in helps.items()}


def dataclass_values(holders: Mapping[str, flags.FlagHolder]
                     ) -> dict[str, Any]:
  """Field name -> parsed flag value (lists become tuples)."""
  return {name: tuple(h.value) if isinstance(h.value, list) else h.value
          for name, h in holders.items()}


def define_override_flags(config: ml_collections.ConfigDict,
                          helps: Mapping[str, str],
                          flag_values: flags.FlagValues = flags.FLAGS
                          ) -> dict[str, flags.FlagHolder]:
  """Named flags that override fields of ``config`` when given.

  Each flag takes the type of the field's value in ``config`` (a tuple of
  ints becomes an integer list) and defaults to None: not given, the
  config's value stays.

  Args:
    config: a config whose values give the types.
    helps: field path (``deq.rel_tol``: the flag is ``--rel_tol``) -> help.

  Returns:
    Field path -> flag holder; :func:`given_overrides` reads them back.
  """
  holders = {}
  for path, help_ in helps.items():
    value = config
    for part in path.split('.'):
      value = value[part]
    if isinstance(value, (tuple, list)):
      if not value:
        raise TypeError(f'cannot type --{path} from an empty list')
      kind = tuple[type(value[0]), ...]
    else:
      kind = type(value)
    holders[path] = _define_typed(path.split('.')[-1], kind, None, help_,
                                  flag_values)
  return holders


def given_overrides(holders: Mapping[str, flags.FlagHolder]
                    ) -> dict[str, Any]:
  """Field path -> value of the override flags that were given."""
  return {path: tuple(h.value) if isinstance(h.value, list) else h.value
          for path, h in holders.items() if h.value is not None}


def check_equilibrium_only(names: Sequence[str],
                           config: ml_collections.ConfigDict) -> None:
  """Refuses solver settings for a run whose model has no solver.

  Args:
    names: the solver flags that were given (without ``--``).
    config: the run's config (its ``model`` decides).

  Raises:
    ValueError: ``names`` is not empty and the model is not an equilibrium
      model (``dear``); the message names the flags.
  """
  # Imported here: the report imports this module and needs no CLRS.
  from deq_clrs.training import models  # pylint: disable=g-import-not-at-top
  if names and not models.is_equilibrium(config):
    raise ValueError(
        f'--{", --".join(sorted(names))} only apply to the equilibrium solver '
        f'of --model=dear; --model={config.model} runs its processor for the '
        f'true number of steps')
