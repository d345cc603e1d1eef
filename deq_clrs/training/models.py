"""Model wiring: DEAR and its NAR baselines on CLRS's public ``Net``.

* ``dear``: an equilibrium processor (``deq_mpnn`` / ``deq_triplet_mpnn``)
  fed one-shot data, so CLRS calls it once per graph and it never sees the
  true number of steps; no hints.
* ``nar``: a processor run once per step of the true algorithm (CLRS reads
  each graph's output at its true length), trained without hints: DEAR's
  baseline.
* ``nar_lt``: NAR with learned termination, the paper's other baseline
  (:mod:`~deq_clrs.training.termination`): trained on the true number of
  steps with a decoded termination hint, run to a cap at test time and read
  where it predicts the end.
* ``nar_hints``: the same with encoded and decoded hints (classic CLRS).

What each variant is (its processor, data, hints, termination) is its
record in :mod:`~deq_clrs.training.variants`; this module builds from it.

A NAR processor is either one of our Flax cells (``mpnn``,
``triplet_mpnn``: the cell DEAR iterates, run per step) or a stock CLRS
processor named ``clrs:<kind>`` (e.g. ``clrs:triplet_gmpnn``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any
from typing import NamedTuple

import clrs
import jax
import ml_collections
import numpy as np

from deq_clrs import alignment as alignment_lib
from deq_clrs import integration
from deq_clrs.training import data as data_lib
from deq_clrs.training import network as network_lib
from deq_clrs.training import parallel
from deq_clrs.training import preflight
from deq_clrs.training import step as step_lib
from deq_clrs.training import termination
from deq_clrs.training import variants

# The names and the light checks live in preflight (no CLRS); re-exported.
MODELS = preflight.MODELS
EQUILIBRIUM_PROCESSORS = preflight.EQUILIBRIUM_PROCESSORS
CELL_PROCESSORS = preflight.CELL_PROCESSORS
CLRS_PREFIX = preflight.CLRS_PREFIX
CLRS_PROCESSORS = preflight.CLRS_PROCESSORS
processor_name = preflight.processor_name
uses_hints = preflight.uses_hints
is_equilibrium = preflight.is_equilibrium
cell_options = preflight.cell_options


def model_spec(config: ml_collections.ConfigDict) -> clrs.Spec:
  """The CLRS spec a config's models are built on."""
  spec = data_lib.algorithm_spec(config.algorithm)
  if variants.of(config).learned_termination:
    return termination.termination_spec(spec)
  return spec


def processor_factory(config: ml_collections.ConfigDict):
  """The training processor factory of a config (validated by its builder).

  Raises:
    ValueError: an unknown processor or one that does not fit the model.
  """
  name = preflight.check_processor(config)
  if name.startswith(CLRS_PREFIX):
    return clrs.get_processor_factory(
        name[len(CLRS_PREFIX):], use_ln=config.cell.layer_norm,
        nb_triplet_fts=config.cell.nb_triplet_fts, nb_heads=1)
  return integration.get_processor_factory(
      name, **preflight.processor_options(config))


def decodes_hints(config: ml_collections.ConfigDict) -> bool:
  """Whether the model predicts hints (nar_hints, and nar_lt's termination
  hint)."""
  return variants.of(config).decodes_hints


def preparation(config: ml_collections.ConfigDict
                ) -> Callable[[clrs.Feedback], clrs.Feedback]:
  """What a config's model is trained on, from a cached ``Feedback``."""
  if is_equilibrium(config):
    return integration.one_shot_feedback
  if variants.of(config).learned_termination:
    return termination.termination_feedback
  return _identity


class Evaluation(NamedTuple):
  """What evaluating one batch gives.

  Attributes:
    preds: postprocessed output DataPoints, ``[B, ...]``, on the host.
    stats: per-graph records ``{name: [B]}`` (solver statistics for DEAR,
      the steps taken for nar_lt) or None.
    loss: the batch's task loss, a device scalar (not waited for), or None
      when it was not asked for.
  """
  preds: dict[str, clrs.DataPoint]
  stats: dict[str, np.ndarray] | None
  loss: jax.Array | None


@dataclasses.dataclass
class Models:
  """A model's steps, its initial state and how to feed and evaluate it.

  Attributes:
    stepper: jitted training and evaluation steps over the mesh; for DEAR
      its evaluation network has the evaluation solver budget and no noise
      (same parameter names as the training network).
    initial_state: the training state drawn from ``config.seed``.
    prepare: maps a cached ``Feedback`` to what the model is trained on
      (one-shot for DEAR, the termination hint for nar_lt).
    evaluate: ``(params, key, cached Feedback, with_loss) -> Evaluation``:
      predictions (and, with ``with_loss``, the task loss) of one batch,
      from one forward pass.
    step_extras: maps a cached training batch to the extra keyword
      arguments of ``stepper.train_step`` (the true lengths and steps for
      the alignment regulariser; none otherwise).
  """
  stepper: step_lib.Stepper
  initial_state: step_lib.TrainState
  prepare: Callable[[clrs.Feedback], clrs.Feedback]
  evaluate: Callable[[Any, jax.Array, clrs.Feedback, bool], Evaluation] = (
      None)
  step_extras: Callable[[clrs.Feedback], dict[str, Any]] = lambda fb: {}

  @property
  def num_devices(self) -> int:
    """Devices the batch is sharded over (data parallel)."""
    return self.stepper.num_devices

  def train_inputs(self, batch: clrs.Feedback
                   ) -> tuple[clrs.Feedback, dict[str, Any]]:
    """``(prepared batch, extra keyword arguments of train_step)`` of a
    cached training batch."""
    return self.prepare(batch), self.step_extras(batch)


def _identity(feedback: clrs.Feedback) -> clrs.Feedback:
  return feedback


def _plain_evaluate(models: Models):
  def evaluate(params, key, feedback, with_loss=False):
    preds, loss, solver = models.stepper.evaluate_with_stats(
        params, key, models.prepare(feedback))
    stats = None
    if solver is not None:  # DEAR: per-graph solver statistics.
      stats = {'iterations': np.ravel(solver.iterations),
               'converged': np.ravel(solver.converged),
               'rel_residual': np.ravel(solver.rel_residual)}
    return Evaluation(preds, stats, loss if with_loss else None)
  return evaluate


def aligned(config: ml_collections.ConfigDict) -> bool:
  """Whether the config trains with DEAR's alignment regulariser."""
  return config.align.weight > 0


def alignment_extras(feedback: clrs.Feedback) -> dict[str, Any]:
  """What a training step with the alignment regulariser needs besides the
  one-shot batch: the graphs' true lengths and the teacher's steps (the
  batch's time steps - 1, so one compilation per cached pool)."""
  steps = max(dp.data.shape[0] for dp in feedback.features.hints)
  return {'lengths': np.asarray(feedback.features.lengths),
          'steps': max(steps - 1, 1)}


def _check_pointer_mask(config: ml_collections.ConfigDict,
                        spec: clrs.Spec) -> None:
  """``cell.mask_pointers`` needs a graph to mask to: CLRS masks pointer
  logits with the adjacency its network builds from the inputs, which for
  an algorithm without an edge input is the identity (every node would
  point to itself)."""
  edge_inputs = [name for name, (stage, location, _) in spec.items()
                 if stage == clrs.Stage.INPUT
                 and location == clrs.Location.EDGE]
  if config.cell.get('mask_pointers') and not edge_inputs:
    raise ValueError(
        f'cell.mask_pointers=True needs an algorithm with a graph (edge) '
        f'input; {config.algorithm} has none')


def build_models(config: ml_collections.ConfigDict,
                 dummy: clrs.Feedback,
                 teacher_params: Any | None = None,
                 lt_read_at: str = 'stop') -> Models:
  """Builds the steps of a config's model and its initial state.

  Args:
    config: the run config (see ``experiments/configs/default.py``).
    dummy: a cached training batch (not yet prepared) giving shapes.
    teacher_params: with the alignment regulariser (``config.align``): the
      trained NAR's network parameters, as its checkpoint holds them.
    lt_read_at: ``nar_lt`` only: where evaluation reads the predictions, one
      of :data:`~deq_clrs.training.termination.LT_READ_AT`
      (``'true_length'`` is a diagnostic).

  Returns:
    :class:`Models` with parameters initialised from ``config.seed``, data
    parallel over ``config.num_devices`` devices (0 = all).
  """
  spec = model_spec(config)
  _check_pointer_mask(config, spec)
  prepare = preparation(config)
  dummy = prepare(dummy)
  network = _network_builder(config, spec, dummy)
  train_factory = processor_factory(config)
  eval_net = _evaluation_network(config, train_factory, network)
  mesh = make_mesh(config)
  alignment = None
  if aligned(config):
    train_factory, alignment = _alignment(config, spec, dummy, train_factory,
                                          teacher_params, mesh)
  stepper = step_lib.Stepper(
      spec=spec, net=network(train_factory, with_state=alignment is not None),
      optimizer=step_lib.make_optimizer(config.learning_rate,
                                        config.grad_clip),
      mesh=mesh, decode_hints=decodes_hints(config), eval_net=eval_net,
      alignment=alignment,
      pointers_over_edges=config.pointer_loss == 'edges')
  models = Models(stepper=stepper,
                  initial_state=stepper.init(config.seed, dummy.features),
                  prepare=prepare)
  termination.check_lt_read_at(lt_read_at, config.model)
  if variants.of(config).learned_termination:
    evaluate = termination.lt_evaluate(stepper, config, lt_read_at)
    models.evaluate = lambda *args, **kwargs: Evaluation(
        *evaluate(*args, **kwargs))
  else:
    models.evaluate = _plain_evaluate(models)
  if alignment is not None:
    models.step_extras = alignment_extras
  return models


def _network_builder(config: ml_collections.ConfigDict, spec: clrs.Spec,
                     dummy: clrs.Feedback):
  """``(processor factory, with_state=False) -> network``: CLRS's ``Net``
  with the config's sizes and hints, for the prepared batch ``dummy``."""
  def network(factory, with_state=False):
    return network_lib.build_network(
        spec, dummy, factory, hidden_dim=config.hidden_size,
        encode_hints=uses_hints(config), decode_hints=decodes_hints(config),
        with_state=with_state)
  return network


def _evaluation_network(config: ml_collections.ConfigDict,
                        train_factory: Any, network: Callable[..., Any]):
  """DEAR's evaluation network (None for other models: the training network
  predicts)."""
  if not is_equilibrium(config):
    return None
  # Same parameter names; it only predicts. Its solver statistics come
  # back as Haiku state, so that its compiled programs have no host
  # callback and JAX's persistent cache can keep them.
  return network(dataclasses.replace(train_factory.for_evaluation(),
                                     stats_in_state=True),
                 with_state=True)


def _alignment(config: ml_collections.ConfigDict, spec: clrs.Spec,
               dummy: clrs.Feedback, train_factory: Any,
               teacher_params: Any | None, mesh: jax.sharding.Mesh
               ) -> tuple[Any, network_lib.Alignment]:
  """The alignment regulariser of ``config.align``, and the training
  processor factory that samples its solver trajectory for it.

  Raises:
    ValueError: no teacher parameters were given.
  """
  if teacher_params is None:
    raise ValueError('config.align needs the teacher\'s parameters')
  slots = alignment_lib.max_samples(train_factory.deq.solver.max_iter)
  train_factory = dataclasses.replace(
      train_factory, deq=dataclasses.replace(train_factory.deq,
                                             trajectory_samples=slots))
  teacher = integration.cell_params_as_equilibrium(teacher_params)
  alignment = network_lib.Alignment(
      spec=spec, dummy=dummy, hidden_dim=config.hidden_size,
      cell=train_factory.cell,
      teacher_params=parallel.replicate(mesh, teacher),
      weight=config.align.weight)
  return train_factory, alignment


def make_mesh(config: ml_collections.ConfigDict) -> jax.sharding.Mesh:
  """The data-parallel mesh of a config: all devices, or the first n."""
  if config.num_devices == 0:
    return parallel.make_mesh()
  return parallel.make_mesh(jax.devices()[:config.num_devices])


def _check_devices(config: ml_collections.ConfigDict) -> None:
  """The devices exist and divide the training batch."""
  if config.num_devices < 0 or config.num_devices > jax.device_count():
    raise ValueError(f'num_devices must be in 0..{jax.device_count()} (0 = '
                     f'all devices), got {config.num_devices}')
  devices = config.num_devices or jax.device_count()
  if config.batch_size % devices:
    raise ValueError(f'batch_size {config.batch_size} must be divisible by '
                     f'the {devices} devices it is sharded over (set '
                     f'num_devices or batch_size)')


def check_teacher(config: ml_collections.ConfigDict,
                  teacher: ml_collections.ConfigDict) -> None:
  """The NAR run ``teacher`` can be the alignment teacher of ``config``.

  Raises:
    ValueError: naming the first setting that does not fit.
  """
  want = {'model': 'nar', 'algorithm': config.algorithm,
          'hidden_size': config.hidden_size,
          'processor': preflight.TEACHER_PROCESSOR[processor_name(config)]}
  got = {'model': teacher.model, 'algorithm': teacher.algorithm,
         'hidden_size': teacher.hidden_size,
         'processor': processor_name(teacher)}
  for key, value in want.items():
    if got[key] != value:
      raise ValueError(
          f'align.teacher={config.align.teacher} is not a fit teacher: its '
          f'{key} is {got[key]!r}, this run needs {value!r}')
  if dict(teacher.cell) != dict(config.cell):
    raise ValueError(
        f'align.teacher={config.align.teacher} has other cell settings '
        f'({dict(teacher.cell)}) than this run ({dict(config.cell)})')


def check_config(config: ml_collections.ConfigDict) -> None:
  """Refuses configs that cannot run, with a message that says why:
  :func:`preflight.check_config` and the devices (which start JAX's
  backend).

  Raises:
    ValueError: naming the offending setting and what is valid.
  """
  preflight.check_config(config)
  _check_devices(config)
