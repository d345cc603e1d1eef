"""Model wiring: DEAR and its NAR baselines as CLRS ``BaselineModel`` s.

* ``dear``: an equilibrium processor (``deq_mpnn`` / ``deq_triplet_mpnn``)
  fed one-shot data, so CLRS calls it once per graph and it never sees the
  true number of steps; no hints.
* ``nar``: a processor run once per step of the true algorithm (CLRS reads
  each graph's output at its true length), trained without hints: DEAR's
  baseline.
* ``nar_hints``: the same with encoded and decoded hints (classic CLRS).

A NAR processor is either one of our Flax cells (``mpnn``,
``triplet_mpnn``: the cell DEAR iterates, run per step) or a stock CLRS
processor named ``clrs:<kind>`` (e.g. ``clrs:triplet_gmpnn``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

import clrs
import jax
import jax.numpy as jnp
import ml_collections

import deq_clrs
from deq_clrs import parallel
from deq_clrs.training import data as data_lib

MODELS = ('dear', 'nar', 'nar_hints')
DEFAULT_PROCESSOR = {'dear': 'deq_mpnn', 'nar': 'mpnn', 'nar_hints': 'mpnn'}
EQUILIBRIUM_PROCESSORS = ('deq_mpnn', 'deq_triplet_mpnn')
CELL_PROCESSORS = ('mpnn', 'triplet_mpnn')
CLRS_PREFIX = 'clrs:'
CLRS_PROCESSORS = ('deepsets', 'gat', 'gat_full', 'gatv2', 'gatv2_full',
                   'memnet_full', 'memnet_masked', 'mpnn', 'pgn', 'pgn_mask',
                   'triplet_mpnn', 'triplet_pgn', 'triplet_pgn_mask', 'gpgn',
                   'gpgn_mask', 'gmpnn', 'triplet_gpgn', 'triplet_gpgn_mask',
                   'triplet_gmpnn')


def processor_name(config: ml_collections.ConfigDict) -> str:
  """The processor of a config, with ``''`` resolved per model."""
  return config.processor or DEFAULT_PROCESSOR[config.model]


def uses_hints(config: ml_collections.ConfigDict) -> bool:
  return config.model == 'nar_hints'


def is_equilibrium(config: ml_collections.ConfigDict) -> bool:
  return config.model == 'dear'


def cell_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Cell options for :func:`deq_clrs.get_processor_factory`."""
  options = dict(config.cell)
  options['mid_size'] = options['mid_size'] or None  # 0 = hidden size.
  return options


def processor_factory(config: ml_collections.ConfigDict,
                      stats_log: deq_clrs.SolverStatsLog | None = None):
  """The training processor factory of a config (validated by its builder).

  Raises:
    ValueError: an unknown processor or one that does not fit the model.
  """
  name = processor_name(config)
  if config.model == 'dear':
    if name not in EQUILIBRIUM_PROCESSORS:
      raise ValueError(
          f'--model=dear needs an equilibrium processor '
          f'{list(EQUILIBRIUM_PROCESSORS)}, got --processor={name!r}')
    return deq_clrs.get_processor_factory(
        name, stats_log=stats_log, **cell_options(config), **dict(config.deq))
  if name in EQUILIBRIUM_PROCESSORS:
    raise ValueError(
        f'--processor={name!r} solves for an equilibrium and is only valid '
        f'with --model=dear; --model={config.model} runs a processor for the '
        f'true number of steps: use one of {list(CELL_PROCESSORS)} or '
        f'clrs:<kind>')
  if name in CELL_PROCESSORS:
    return deq_clrs.get_processor_factory(name, **cell_options(config))
  if name.startswith(CLRS_PREFIX):
    kind = name[len(CLRS_PREFIX):]
    if kind not in CLRS_PROCESSORS:
      raise ValueError(f'unknown CLRS processor {kind!r}; expected one of '
                       f'{list(CLRS_PROCESSORS)}')
    return clrs.get_processor_factory(
        kind, use_ln=config.cell.layer_norm,
        nb_triplet_fts=config.cell.nb_triplet_fts, nb_heads=1)
  raise ValueError(
      f'unknown processor {name!r}; expected one of '
      f'{list(EQUILIBRIUM_PROCESSORS + CELL_PROCESSORS)} or clrs:<kind>')


@dataclasses.dataclass
class Models:
  """A training model, its evaluation twin and how to feed them.

  Attributes:
    train: the model that is trained (``feedback``).
    eval: the model used for ``predict``; for DEAR it has the evaluation
      solver budget and no noise; parameters are copied from ``train`` by
      :meth:`sync`.
    stats_log: solver statistics of the evaluation model (DEAR only).
    prepare: maps a cached ``Feedback`` to what the models are fed
      (one-shot for DEAR).
  """
  train: clrs.models.BaselineModel
  eval: clrs.models.BaselineModel
  stats_log: deq_clrs.SolverStatsLog | None
  prepare: Callable[[clrs.Feedback], clrs.Feedback]

  @property
  def num_devices(self) -> int:
    """Devices the batch is sharded over (data parallel)."""
    return self.train.num_devices

  def sync(self) -> None:
    """Copies the training parameters into the evaluation model."""
    if self.eval is not self.train:
      self.eval.params = self.train.params


def _identity(feedback: clrs.Feedback) -> clrs.Feedback:
  return feedback


def init_model(model: clrs.models.BaselineModel, features: clrs.Features,
               seed: int) -> None:
  """``BaselineModel.init`` with the network's init function jitted.

  CLRS runs ``init`` eagerly, which takes tens of seconds for an
  equilibrium processor on CPU (every primitive of the solver loop is
  dispatched on its own); the jitted init gives the same parameters.
  """
  init = jax.jit(functools.partial(model.net_fn.init, algorithm_index=-1,
                                   return_hints=False,
                                   return_all_outputs=False),
                 static_argnums=2)
  model.params = init(jax.random.PRNGKey(seed), [features], True)
  model.opt_state = model.opt.init(model.params)
  model.opt_state_skeleton = model.opt.init(jnp.zeros(1))


def build_models(config: ml_collections.ConfigDict,
                 dummy: clrs.Feedback) -> Models:
  """Builds and initialises the models of a config.

  Args:
    config: the run config (see ``experiments/configs/default.py``).
    dummy: a cached training batch (not yet prepared) giving shapes.

  Returns:
    :class:`Models` with parameters initialised from ``config.seed``, data
    parallel over ``config.num_devices`` devices (0 = all).
  """
  mesh = make_mesh(config)
  spec = data_lib.algorithm_spec(config.algorithm)
  hints = uses_hints(config)
  prepare = deq_clrs.one_shot_feedback if is_equilibrium(config) else _identity
  dummy = prepare(dummy)

  def model(factory, name):
    return parallel.DataParallelBaselineModel(
        spec=spec, dummy_trajectory=dummy, processor_factory=factory,
        hidden_dim=config.hidden_size, encode_hints=hints,
        decode_hints=hints, learning_rate=config.learning_rate,
        grad_clip_max_norm=config.grad_clip, name=name, mesh=mesh)

  train_factory = processor_factory(config)
  train = model(train_factory, 'base_model')
  init_model(train, dummy.features, config.seed)
  stats_log = None
  evaluation = train
  if is_equilibrium(config):
    # Same parameter names; it only predicts, so it needs no optimizer.
    stats_log = deq_clrs.SolverStatsLog()
    evaluation = model(train_factory.for_evaluation(stats_log), 'base_model')
    evaluation.params = train.params
  return Models(train=train, eval=evaluation, stats_log=stats_log,
                prepare=prepare)


def make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """The data-parallel mesh of a config: all devices, or the first n."""
  if config.num_devices == 0:
    return parallel.make_mesh()
  return parallel.make_mesh(jax.devices()[:config.num_devices])


def check_config(config: ml_collections.ConfigDict) -> None:
  """Refuses configs that cannot run, with a message that says why.

  Raises:
    ValueError: naming the offending setting and what is valid.
  """
  algorithms = data_lib.valid_algorithms()
  if config.algorithm not in algorithms:
    raise ValueError(f'unknown algorithm {config.algorithm!r}; valid CLRS-30 '
                     f'algorithms: {", ".join(algorithms)}')
  if config.model not in MODELS:
    raise ValueError(f'unknown model {config.model!r}; expected one of '
                     f'{list(MODELS)}')
  positive = ('hidden_size', 'batch_size', 'train_samples_per_size',
              'val_samples', 'test_samples', 'eval_batch_size', 'log_every',
              'eval_every', 'checkpoint_every', 'keep_checkpoints', 'val_size')
  for key in positive:
    if config[key] < 1:
      raise ValueError(f'{key} must be >= 1, got {config[key]}')
  if config.num_devices < 0 or config.num_devices > jax.device_count():
    raise ValueError(f'num_devices must be in 0..{jax.device_count()} (0 = '
                     f'all devices), got {config.num_devices}')
  devices = config.num_devices or jax.device_count()
  if config.batch_size % devices:
    raise ValueError(f'batch_size {config.batch_size} must be divisible by '
                     f'the {devices} devices it is sharded over (set '
                     f'num_devices or batch_size)')
  if config.train_steps < 0:
    raise ValueError(f'train_steps must be >= 0, got {config.train_steps}')
  if not config.learning_rate > 0:
    raise ValueError(
        f'learning_rate must be > 0, got {config.learning_rate}')
  if config.grad_clip < 0:
    raise ValueError(f'grad_clip must be >= 0, got {config.grad_clip}')
  for key in ('train_sizes', 'test_sizes'):
    sizes = list(config[key])
    if not sizes:
      raise ValueError(f'{key} must name at least one graph size')
    if min(sizes) < 4:
      raise ValueError(f'{key} must be >= 4 nodes, got {sizes}')
  if config.val_size < 4:
    raise ValueError(f'val_size must be >= 4 nodes, got {config.val_size}')
  # Builds (and so validates) the processor options without a model.
  processor_factory(config)
