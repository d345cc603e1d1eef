"""The gradient-agreement run: its config and the DEAR cell it measures.

:func:`run_gradient_agreement` trains a small DEAR cell in a stock
``BaselineModel`` (:func:`train_dear_cell`) or loads one from an
``experiments/train.py`` workdir (:func:`load_dear_cell`), and compares its
gradient with the implicit one on unseen graphs
(:func:`deq_clrs.measure.gradient_agreement.gradient_agreement`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from deq_clrs import integration
from deq_clrs.measure import baseline
from deq_clrs.measure import gradient_agreement
from deq_clrs.training import data as data_lib


@dataclasses.dataclass
class TrainedCell:
  """A DEAR model's parameters and what is needed to rebuild it.

  Attributes:
    algorithm: the CLRS algorithm it was trained on.
    params: CLRS ``BaselineModel`` parameters (Haiku path -> name -> array).
    hidden_dim: latent width.
    processor: the equilibrium processor kind (``deq_mpnn``, ...).
    options: the processor factory options it was trained with.
    steps: training steps taken.
    losses: training loss of every step (empty when loaded).
    source: ``'trained'``, or the workdir it was loaded from.
  """
  algorithm: str
  params: dict[str, Any]
  hidden_dim: int
  processor: str = 'deq_mpnn'
  options: dict[str, Any] = dataclasses.field(default_factory=dict)
  steps: int = 0
  losses: list[float] = dataclasses.field(default_factory=list)
  source: str = 'trained'


@dataclasses.dataclass(frozen=True)
class GradientAgreementConfig:
  """The gradient-agreement measurement of the benchmark.

  Attributes:
    algorithm: CLRS algorithm of the trained cell (ignored with
      ``workdir``: the run's algorithm is used).
    train_sizes: training graph sizes, cycled.
    steps: training steps.
    hidden_dim: latent width (ignored with ``workdir``).
    batch_size: graphs per training batch and in the compared batch.
    learning_rate: Adam's learning rate.
    size: nodes per graph of the compared batch.
    seed: parameter and data seed (the compared batch has its own sampler
      seed, ``seed + 7919 + size``, unseen in training).
    workdir: load the cell from this ``experiments/train.py`` workdir
      instead of training one.
  """
  algorithm: str = 'bfs'
  train_sizes: tuple[int, ...] = (8, 12)
  steps: int = 300
  hidden_dim: int = 32
  batch_size: int = 8
  learning_rate: float = 3e-3
  size: int = 12
  seed: int = 0
  workdir: str | None = None

  def __post_init__(self):
    data_lib.check_algorithms([self.algorithm])
    if self.steps < 0 or self.batch_size < 1 or self.hidden_dim < 1:
      raise ValueError('steps must be >= 0, batch_size and hidden_dim >= 1')
    if min(self.train_sizes + (self.size,)) < 4:
      raise ValueError('graph sizes must be >= 4 nodes')


# train_dear_cell's defaults are the measurement's.
_TRAIN_DEFAULTS = GradientAgreementConfig


def train_dear_cell(algorithm: str = _TRAIN_DEFAULTS.algorithm, *,
                    sizes: tuple[int, ...] = _TRAIN_DEFAULTS.train_sizes,
                    hidden_dim: int = _TRAIN_DEFAULTS.hidden_dim,
                    batch_size: int = _TRAIN_DEFAULTS.batch_size,
                    steps: int = _TRAIN_DEFAULTS.steps,
                    learning_rate: float = _TRAIN_DEFAULTS.learning_rate,
                    seed: int = _TRAIN_DEFAULTS.seed,
                    options: dict[str, Any] | None = None,
                    processor: str = 'deq_mpnn',
                    log: Callable[[str], None] | None = None) -> TrainedCell:
  """Trains a small DEAR ``BaselineModel`` on fresh CLRS samples.

  Step ``i`` trains (public ``feedback``) on a new one-shot batch of
  ``batch_size`` graphs of ``sizes[i % len(sizes)]`` nodes (one CLRS
  sampler per size, seeded with ``seed + size``), with Adam at
  ``learning_rate`` and gradient clipping 1. The defaults are
  :class:`GradientAgreementConfig` 's.

  Args:
    algorithm: a CLRS algorithm.
    sizes: training graph sizes, cycled.
    hidden_dim: latent width.
    batch_size: graphs per step.
    steps: training steps (0 returns the initial parameters).
    learning_rate: Adam's learning rate.
    seed: parameter and data seed.
    options: processor options (default: DEAR's: phantom(1), relative
      tolerance 0.1, noise 1e-3).
    processor: the equilibrium processor kind.
    log: called with a progress line every 50 steps.

  Returns:
    A :class:`TrainedCell`.
  """
  options = dict(options or {})
  per_size = max(1, math.ceil(steps / len(sizes)))
  batches = {n: [integration.one_shot_feedback(fb) for fb in
                 data_lib.sample_batches(algorithm, n, batch_size, per_size,
                                         seed + n)]
             for n in sizes}
  dummy = batches[sizes[0]][0]
  model = baseline.baseline_model(
      data_lib.algorithm_spec(algorithm), dummy,
      integration.get_processor_factory(processor, **options), hidden_dim,
      learning_rate)
  baseline.init_model(model, dummy.features, seed)
  losses = []
  for i in range(steps):
    fb = batches[sizes[i % len(sizes)]][i // len(sizes)]
    losses.append(float(model.feedback(jax.random.PRNGKey(seed + i), fb)))
    if log is not None and (i + 1) % 50 == 0:
      log(f'[{algorithm}] DEAR training step {i + 1}/{steps}: loss '
          f'{np.mean(losses[-50:]):.4f} (mean of the last 50)')
  return TrainedCell(algorithm=algorithm, params=model.params,
                     hidden_dim=hidden_dim, processor=processor,
                     options=options, steps=steps, losses=losses)


def _read_dear_config(workdir: str) -> dict[str, Any]:
  """A ``dear`` run's ``config.json``.

  Raises:
    ValueError: not a ``dear`` run.
    FileNotFoundError: no config or no checkpoints in ``workdir``.
  """
  with open(os.path.join(workdir, 'config.json')) as f:
    config = json.load(f)
  if config.get('model') != 'dear':
    raise ValueError(f'{workdir} holds a {config.get("model")!r} run; '
                     'gradient agreement needs a dear run')
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise FileNotFoundError(f'no checkpoints under {workdir}')
  return config


def load_dear_cell(workdir: str, which: str = 'best') -> TrainedCell:
  """Loads a DEAR model from an ``experiments/train.py`` workdir.

  Reads ``config.json`` (algorithm, hidden size, processor, cell and solver
  settings) and the latest checkpoint under ``checkpoints/``.

  Args:
    workdir: the run's working directory.
    which: ``'best'`` (best-by-validation parameters) or ``'last'``.

  Returns:
    A :class:`TrainedCell` whose ``options`` are the run's cell and
    equilibrium settings.

  Raises:
    ValueError: not a ``dear`` run, or a bad ``which``.
    FileNotFoundError: no config or no checkpoint in ``workdir``.
  """
  # Imported here: orbax is only needed to load checkpoints.
  from deq_clrs.training import checkpoints as ckpt_lib  # noqa: PLC0415

  if which not in ('best', 'last'):
    raise ValueError(f"which must be 'best' or 'last', got {which!r}")
  config = _read_dear_config(workdir)
  checkpointer = ckpt_lib.Checkpointer(workdir)
  try:
    state = checkpointer.restore(None)
  finally:
    checkpointer.close()
  params = state['best_params' if which == 'best' else 'params']
  params = jax.tree_util.tree_map(np.asarray, params)
  cell = dict(config['cell'])
  cell['mid_size'] = cell['mid_size'] or None  # 0 = the hidden size.
  return TrainedCell(
      algorithm=config['algorithm'], params=params,
      hidden_dim=int(config['hidden_size']),
      processor=config.get('processor') or 'deq_mpnn',
      options={**cell, **config['deq']}, steps=int(state['step']),
      source=os.path.abspath(workdir))


def run_gradient_agreement(config: GradientAgreementConfig,
                           log: Callable[[str], None] = print
                           ) -> dict[str, Any]:
  """Trains (or loads) a DEAR cell and runs
  :func:`~deq_clrs.measure.gradient_agreement.gradient_agreement`.

  The tested gradient is the one the cell was trained with (DEAR's
  phantom(1) by default), at its own solver settings.

  Returns:
    ``gradient_agreement`` 's dict with a ``cell`` entry saying where
    the parameters came from (``source``, ``steps``, ``final_loss``: mean
    training loss of the last 10 % of steps).
  """
  if config.workdir:
    log(f'loading a DEAR cell from {config.workdir}')
    cell = load_dear_cell(config.workdir)
  else:
    log(f'training a DEAR cell on {config.algorithm} for {config.steps} '
        'steps')
    cell = train_dear_cell(
        config.algorithm, sizes=config.train_sizes,
        hidden_dim=config.hidden_dim, batch_size=config.batch_size,
        steps=config.steps, learning_rate=config.learning_rate,
        seed=config.seed, log=log)
  (feedback,) = data_lib.sample_batches(
      cell.algorithm, config.size, config.batch_size, 1,
      config.seed + 7919 + config.size)
  log('comparing gradients')
  result = gradient_agreement.gradient_agreement(
      cell.algorithm, cell.params, feedback, hidden_dim=cell.hidden_dim,
      factory_options=cell.options, processor=cell.processor,
      seed=config.seed)
  tail = cell.losses[-max(1, len(cell.losses) // 10):]
  result['cell'] = {
      'source': cell.source, 'steps': cell.steps,
      'final_loss': float(np.mean(tail)) if tail else None,
      'options': cell.options}
  return result
