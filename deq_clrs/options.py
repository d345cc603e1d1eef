"""Processor options: their names, their defaults and their checks.

A processor (:func:`deq_clrs.integration.get_processor_factory`) takes flat
options (``mid_size``, ``solver``, ``rel_tol``, ...) that fill the config
dataclasses of the core: :class:`~deq_clrs.cells.CellConfig`,
:class:`~deq_clrs.solvers.SolverConfig`,
:class:`~deq_clrs.solvers.BackwardConfig` and
:class:`~deq_clrs.deq.DEQConfig`. This module maps the options to the
fields, reads their defaults (:func:`option_defaults`) and builds and so
checks the dataclasses (:func:`processor_configs`).

It is part of the core (jax and flax, no clrs, haiku or TensorFlow): the
experiment configs read their defaults here, and the entry points check
a command line's options here before they import CLRS.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from deq_clrs import cells as cells_lib
from deq_clrs import deq as deq_lib
from deq_clrs import solvers

PROCESSOR_KINDS = {
    # kind: (cell kind, equilibrium?)
    'deq_mpnn': ('mpnn', True),
    'deq_triplet_mpnn': ('triplet_mpnn', True),
    'mpnn': ('mpnn', False),
    'triplet_mpnn': ('triplet_mpnn', False),
}

# Option name -> field name, per config class.
CELL_OPTIONS = {
    f.name: f.name for f in dataclasses.fields(cells_lib.CellConfig)
    if f.name != 'kind'}
SOLVER_OPTIONS = {'solver': 'method', **{
    f.name: f.name for f in dataclasses.fields(solvers.SolverConfig)
    if f.name != 'method'}}
BACKWARD_OPTIONS = {'backward': 'mode', **{
    f.name: f.name for f in dataclasses.fields(solvers.BackwardConfig)
    if f.name != 'mode'}}
# trajectory_samples is set by the training loop's alignment regulariser
# (it writes Haiku state, which BaselineModel's hk.transform cannot hold).
DEQ_OPTIONS = {f.name: f.name for f in dataclasses.fields(deq_lib.DEQConfig)
               if f.name not in ('solver', 'backward', 'trajectory_samples')}
EQUILIBRIUM_ONLY = {**SOLVER_OPTIONS, **BACKWARD_OPTIONS, **DEQ_OPTIONS}


def _defaults(cls: type, table: dict[str, str]) -> dict[str, Any]:
  fields = {f.name: f.default for f in dataclasses.fields(cls)}
  return {option: fields[field] for option, field in table.items()}


def option_defaults() -> tuple[dict[str, Any], dict[str, Any]]:
  """The defaults of every processor option, read from the dataclasses.

  Returns:
    ``(cell options, equilibrium options)``: option name -> default, with
    the names :func:`deq_clrs.integration.get_processor_factory` takes
    (``solver`` and ``backward`` for the dataclasses' ``method`` and
    ``mode``). Configs are built from these, so each default is written
    once, in its dataclass.
  """
  cell = _defaults(cells_lib.CellConfig, CELL_OPTIONS)
  deq = {**_defaults(solvers.SolverConfig, SOLVER_OPTIONS),
         **_defaults(solvers.BackwardConfig, BACKWARD_OPTIONS),
         **_defaults(deq_lib.DEQConfig, DEQ_OPTIONS)}
  return cell, deq


def processor_configs(kind: str, **options: Any
                      ) -> tuple[cells_lib.CellConfig, deq_lib.DEQConfig]:
  """The cell and equilibrium settings of a processor, checked.

  Args:
    kind: a key of :data:`PROCESSOR_KINDS`.
    **options: see :func:`deq_clrs.integration.get_processor_factory`.

  Returns:
    ``(cell, deq)``; ``deq`` has the defaults' values for a kind that is
    not an equilibrium one.

  Raises:
    ValueError: unknown kind, unknown option, an equilibrium option given to
      a non-equilibrium kind, or an invalid value.
  """
  if kind not in PROCESSOR_KINDS:
    raise ValueError(f'unknown processor kind {kind!r}; expected one of '
                     f'{sorted(PROCESSOR_KINDS)}')
  cell_kind, is_equilibrium = PROCESSOR_KINDS[kind]
  known = {**CELL_OPTIONS, **EQUILIBRIUM_ONLY}
  unknown = sorted(set(options) - set(known))
  if unknown:
    raise ValueError(f'unknown processor option(s) {unknown}; valid options '
                     f'are {sorted(known)}')
  if not is_equilibrium:
    misplaced = sorted(set(options) & set(EQUILIBRIUM_ONLY))
    if misplaced:
      raise ValueError(f'option(s) {misplaced} only apply to equilibrium '
                       f'processors (deq_*), not to {kind!r}')

  def pick(table):
    return {field: options[opt] for opt, field in table.items()
            if opt in options}

  cell = cells_lib.CellConfig(kind=cell_kind, **pick(CELL_OPTIONS))
  deq = deq_lib.DEQConfig(
      solver=solvers.SolverConfig(**pick(SOLVER_OPTIONS)),
      backward=solvers.BackwardConfig(**pick(BACKWARD_OPTIONS)),
      **pick(DEQ_OPTIONS))
  return cell, deq
