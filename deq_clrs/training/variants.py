"""The model variants (``--model``), each described once.

A variant says what the network is given and how it is run; the processor
(``--processor``: one of our cells, an equilibrium processor, or a stock
CLRS one, ``clrs:<kind>``) is a separate choice, checked against the
variant in :mod:`~deq_clrs.training.preflight`. Everything that differs
between variants is read from these records, so adding a variant is adding
a record (and, if it brings a new way of running the processor, a module
like :mod:`~deq_clrs.training.termination` for ``nar_lt``).

Light: no clrs, haiku or TensorFlow (the configs and the preflight checks
read it).
"""

from __future__ import annotations

import dataclasses

import ml_collections


@dataclasses.dataclass(frozen=True)
class ModelVariant:
  """What one ``--model`` is.

  Attributes:
    name: the ``--model`` value.
    default_processor: the processor of ``--processor=''``.
    equilibrium: runs an equilibrium processor once per graph on one-shot
      data (it never sees the true number of steps); otherwise the
      processor is run once per step of the true algorithm.
    encodes_hints: the network encodes CLRS's hints (and decodes them).
    learned_termination: trained with a decoded ``lt_continue`` hint and,
      at test time, run to a cap and read where it predicts the end
      (:mod:`~deq_clrs.training.termination`).
    description: one line for ``--help`` and the docs.
  """
  name: str
  default_processor: str
  equilibrium: bool = False
  encodes_hints: bool = False
  learned_termination: bool = False
  description: str = ''

  @property
  def decodes_hints(self) -> bool:
    """Whether the network predicts hints (CLRS's, or the termination
    hint)."""
    return self.encodes_hints or self.learned_termination


VARIANTS: dict[str, ModelVariant] = {v.name: v for v in (
    ModelVariant('dear', 'deq_mpnn', equilibrium=True,
                 description='DEAR: the equilibrium of one processor step, '
                             'solved per graph; no hints'),
    ModelVariant('nar', 'mpnn',
                 description='the processor run for the true number of '
                             'steps, no hints (DEAR\'s baseline)'),
    ModelVariant('nar_lt', 'mpnn', learned_termination=True,
                 description='NAR with learned termination: run to a cap at '
                             'test time, read where it predicts the end'),
    ModelVariant('nar_hints', 'mpnn', encodes_hints=True,
                 description='NAR with CLRS\'s hints encoded and decoded '
                             '(classic CLRS)'),
)}
MODELS = tuple(VARIANTS)


def of(config: ml_collections.ConfigDict) -> ModelVariant:
  """The variant of a config's ``model``.

  Raises:
    ValueError: an unknown model, naming the valid ones.
  """
  try:
    return VARIANTS[config.model]
  except KeyError:
    raise ValueError(f'unknown model {config.model!r}; expected one of '
                     f'{list(MODELS)}') from None
