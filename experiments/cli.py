"""What the entry points share: flags, one-line errors, config checks.

* Flags: :func:`define_number_list` (the one parser of integer and float
  lists), :func:`define_dataclass_flags` (flags whose names, types and
  defaults are a dataclass's fields, so a default is written once, in the
  dataclass) and :func:`define_override_flags` (named flags that override
  fields of an ml_collections config, typed by its values).
* :func:`define_train_flags`: the flags of ``experiments.train``, defined
  once, so that ``launch`` builds a job's config by parsing its command line
  exactly as the training run will.
* :func:`check_equilibrium_only`: the one check that solver flags are given
  to equilibrium (``dear``) runs only; :func:`check_settings_fit_model`
  applies it to every way of giving them and refuses ``nar_lt.*`` settings
  for other models.
* A problem with the user's input or files ends the program with one line,
  ``error: <what is wrong and what to do>``, exit status 1, no traceback;
  :func:`config_flags_parser` does so for a bad ``--config`` file or field
  (the checks are :mod:`experiments.config_files`).
"""

from __future__ import annotations

import collections
import dataclasses
import pathlib
import sys
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
from ml_collections import config_flags

from experiments import config_files

# experiments.train's config file when --config is not given.
DEFAULT_TRAIN_CONFIG = str(pathlib.Path(__file__).resolve().parent /
                           'configs' / 'default.py')

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


def config_flags_parser(default_file: str
                        ) -> Callable[[list[str]], list[str]]:
  """absl's flag parser, with a one-line error for a ``--config`` file that
  cannot be one (:func:`experiments.config_files.config_file_problem`) and
  for an unknown ``--config.<field>`` (ml_collections raises AttributeError
  or KeyError when ``--config=<file>`` is given; without it, at flag
  definition, where :func:`experiments.config_files.config_field_error` is
  called directly)."""
  def parse(argv: list[str]) -> list[str]:
    path, argument = config_files.given_file(argv, default_file)
    problem = config_files.config_file_problem(path, argument)
    if problem:
      fail(f'--config={path}: {problem}')
    try:
      return app.parse_flags_with_usage(argv)
    except (AttributeError, KeyError):
      fail(config_files.config_field_error(argv, default_file))
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
                          flag_values: flags.FlagValues = flags.FLAGS,
                          shown_defaults: ml_collections.ConfigDict | None
                          = None) -> dict[str, flags.FlagHolder]:
  """Named flags that override fields of ``config`` when given.

  Each flag takes the type of the field's value in ``config`` (a tuple of
  ints becomes an integer list) and defaults to None: not given, the
  config's value stays.

  Args:
    config: a config whose values give the types.
    helps: field path (``deq.rel_tol``: the flag is ``--rel_tol``) -> help.
    shown_defaults: a config whose values the help names as the defaults
      (``Training steps. (default from the config: 300)``); None: none.

  Returns:
    Field path -> flag holder; :func:`given_overrides` reads them back.
  """
  holders = {}
  for path, help_ in helps.items():
    value = _field(config, path)
    if isinstance(value, (tuple, list)):
      if not value:
        raise TypeError(f'cannot type --{path} from an empty list')
      kind = tuple[type(value[0]), ...]
    else:
      kind = type(value)
    holders[path] = _define_typed(
        path.split('.')[-1], kind, None,
        help_ + _default_note(shown_defaults, path), flag_values)
  return holders


def _field(config: ml_collections.ConfigDict, path: str) -> Any:
  """The value of field ``path`` (``deq.rel_tol``) of ``config``."""
  value = config
  for part in path.split('.'):
    value = value[part]
  return value


def _default_note(config: ml_collections.ConfigDict | None,
                  path: str) -> str:
  """`` (default from the config: 64,128)``: field ``path`` of ``config``
  as a flag would give it; empty without a config or that field."""
  try:
    value = _field(config, path) if config is not None else None
  except (AttributeError, KeyError):
    value = None
  if value is None:
    return ''
  if isinstance(value, (tuple, list)):
    shown = ','.join(str(v) for v in value)
  else:
    shown = str(value) if value != '' else "''"
  return f' (default from the config: {shown})'


def given_overrides(holders: Mapping[str, flags.FlagHolder]
                    ) -> dict[str, Any]:
  """Field path -> value of the override flags that were given."""
  return {path: tuple(h.value) if isinstance(h.value, list) else h.value
          for path, h in holders.items() if h.value is not None}




def check_equilibrium_only(names: Sequence[str],
                           config: ml_collections.ConfigDict) -> None:
  """Refuses solver settings for a run whose model has no solver.

  Args:
    names: the solver flags that were given (without ``--``): named flags
      (``rel_tol``) or config fields (``config.deq.rel_tol``).
    config: the run's config (its ``model`` decides).

  Raises:
    ValueError: ``names`` is not empty and the model is not an equilibrium
      model (``dear``); the message names the flags.
  """
  # Imported here: the report imports this module and needs no JAX.
  # pylint: disable-next=g-import-not-at-top
  from deq_clrs.training import variants
  variant = variants.of(config)
  if names and not variant.equilibrium:
    steps = ('until its learned stop (the true number of steps in training)'
             if variant.learned_termination
             else 'for the true number of steps')
    raise ValueError(
        f'--{", --".join(sorted(names))} only '
        f'{"applies" if len(names) == 1 else "apply"} to the equilibrium '
        f'solver of --model=dear; --model={config.model} runs its processor '
        f'{steps}')


def check_settings_fit_model(config_fields: Sequence[str],
                             named: Sequence[str],
                             config: ml_collections.ConfigDict) -> None:
  """Refuses settings that the run's model would ignore.

  A solver setting (``deq.*``) given to a model without a solver, or a
  learned-termination setting (``nar_lt.*``) given to another model, would
  change nothing, silently; a user who gives one expects it to act.

  Args:
    config_fields: the ``--config.<field>`` overrides given (field paths,
      ``deq.rel_tol``), not the config file's own values.
    named: the named override flags given (field paths).
    config: the run's config (its ``model`` decides).

  Raises:
    ValueError: naming the flags and the model they do not fit.
  """
  check_equilibrium_only(
      [path[len('deq.'):] for path in named if path.startswith('deq.')] +
      [f'config.{path}' for path in config_fields
       if path.startswith('deq.')], config)
  lt_only = sorted(f'--config.{path}' for path in config_fields
                   if path.startswith('nar_lt.'))
  # pylint: disable-next=g-import-not-at-top
  from deq_clrs.training import variants
  if lt_only and not variants.of(config).learned_termination:
    verb = 'applies' if len(lt_only) == 1 else 'apply'
    raise ValueError(
        f'{", ".join(lt_only)} only {verb} to --model=nar_lt (learned '
        f'termination), not --model={config.model}')


# experiments.train's named flags: config field path (``deq.rel_tol``: the
# flag is ``--rel_tol``) -> help. A short list of the fields a user sets most;
# every field can also be set with ``--config.<field>``.
TRAIN_NAMED_FLAGS = {
    'algorithm': 'CLRS-30 algorithm name, e.g. bfs.',
    'model': 'dear | nar (true steps, no hints) | nar_lt (learned '
             'termination) | nar_hints (CLRS hints).',
    'processor': 'dear: deq_mpnn | deq_triplet_mpnn; nar*: mpnn | '
                 'triplet_mpnn | clrs:<kind> (e.g. clrs:triplet_gmpnn); '
                 "'' is deq_mpnn for dear, mpnn for nar*.",
    'data_dir': 'Cache of generated datasets.',
    'hidden_size': 'Latent size.', 'batch_size': 'Graphs per step.',
    'train_steps': 'Training steps.', 'seed': 'Initialisation and batch seed.',
    'test_samples': 'Graphs per test set.',
    'test_sizes': 'Test graph sizes, e.g. 64,128.',
    'learning_rate': 'Adam learning rate.',
    # Options of the equilibrium solver: only meaningful with --model=dear.
    'deq.solver': 'anderson | fixed_point.',
    'deq.backward': 'phantom | implicit | unrolled.',
    'deq.max_iter': 'Training iteration cap.',
    'deq.eval_max_iter': 'Evaluation iteration cap.',
    'deq.rel_tol': 'Relative residual tolerance (0 disables).',
    'deq.abs_tol': 'Absolute residual tolerance (0 disables).',
    'deq.jac_reg_weight': 'Weight of the Jacobian regulariser (0 disables).',
}


@dataclasses.dataclass(frozen=True)
class TrainFlags:
  """The flags of ``experiments.train`` in one set of flag values.

  Attributes:
    values: the flag values they are defined in.
    workdir: ``--workdir``.
    named: field path -> holder of the named override flags.
    coordinator_address, num_processes, process_id: the multi-host flags.
  """
  values: flags.FlagValues
  workdir: flags.FlagHolder
  named: dict[str, flags.FlagHolder]
  coordinator_address: flags.FlagHolder
  num_processes: flags.FlagHolder
  process_id: flags.FlagHolder

  def config(self) -> ml_collections.ConfigDict:
    """The config file's config (with its ``--config.<field>`` overrides)
    with the named flags that were given applied; unchecked."""
    config = self.values['config'].value.copy_and_resolve_references()
    config.update_from_flattened_dict(given_overrides(self.named))
    return config

  def config_fields_given(self) -> list[str]:
    """The field paths of the ``--config.<field>`` overrides given on the
    command line (``deq.rel_tol``), without the config file's own values."""
    return sorted(self.values['config'].override_values)


def _help_config(argv: Sequence[str], default: ml_collections.ConfigDict
                 ) -> ml_collections.ConfigDict | None:
  """The config whose values ``--help`` names as the named flags' defaults:
  the ``--config`` file of ``argv`` (``default``, the default file's, when
  none is given), or None if it cannot be loaded (that is reported when the
  flags are parsed)."""
  path, argument = config_files.given_file(argv, DEFAULT_TRAIN_CONFIG)
  if path == DEFAULT_TRAIN_CONFIG and not argument:
    return default
  if config_files.config_file_problem(path, argument):
    return None
  try:
    return config_files.load_config_file(path, argument)
  except Exception:  # pylint: disable=broad-except  (reported at parsing)
    return None


def define_train_flags(flag_values: flags.FlagValues = flags.FLAGS,
                       sys_argv: Sequence[str] | None = None) -> TrainFlags:
  """Defines the flags of ``experiments.train`` in ``flag_values``.

  ``experiments.train`` defines them in absl's global flags; ``launch``
  defines them in fresh flag values and parses a job's command line, so that
  the job's config is built exactly as the run will build it. The help of
  each named flag ends with its default: the value in the ``--config`` file
  of the command line (``(default from the config: 300)``).

  Args:
    flag_values: where to define them.
    sys_argv: the command line whose ``--config.<field>`` overrides the
      config flag reads (ml_collections reads ``sys.argv`` by default).

  Returns:
    The flag holders.

  Raises:
    AttributeError, KeyError: a ``--config.<field>`` of ``sys_argv`` (or
      ``sys.argv``) is not a field of the config file; ml_collections raises
      them here when ``--config`` is not given, else when parsing.
  """
  # pylint: disable-next=import-outside-toplevel
  from experiments.configs import default
  workdir = flags.DEFINE_string(
      'workdir', None, 'Directory for checkpoints, metrics and results.json.',
      required=True, flag_values=flag_values)
  config_flags.DEFINE_config_file(
      'config', DEFAULT_TRAIN_CONFIG, 'Config file (ml_collections); its '
      'fields are set with --config.<field>=value (see experiments/configs/'
      'default.py).', flag_values=flag_values,
      sys_argv=None if sys_argv is None else list(sys_argv))
  config = default.get_config()
  named = define_override_flags(
      config, TRAIN_NAMED_FLAGS, flag_values,
      shown_defaults=_help_config(
          sys.argv if sys_argv is None else sys_argv, config))
  return TrainFlags(
      values=flag_values, workdir=workdir, named=named,
      coordinator_address=flags.DEFINE_string(
          'coordinator_address', None,
          'Multi-host: host:port of process 0. Without it, SLURM (several '
          'tasks) and TPU pod environments are detected by JAX.',
          flag_values=flag_values),
      num_processes=flags.DEFINE_integer(
          'num_processes', None, 'Multi-host: number of processes.',
          flag_values=flag_values),
      process_id=flags.DEFINE_integer(
          'process_id', None, "Multi-host: this process's index.",
          flag_values=flag_values))
