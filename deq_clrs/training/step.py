"""The training and evaluation steps, data parallel, on CLRS's public API.

The network is CLRS's public ``clrs.models.Net`` under ``hk.transform``
(:mod:`deq_clrs.training.network`). The loss is ours
(:mod:`deq_clrs.training.losses`), the optimiser is optax's (Adam, with
clipping by global norm when ``grad_clip > 0``, as ``BaselineModel``), and
every step is ``jax.jit`` over the 1-D ``'data'`` mesh of
:mod:`deq_clrs.training.parallel`: the batch axis of the data is sharded,
parameters and optimiser state are replicated, and XLA inserts the gradient
all-reduce.

* :class:`TrainState`: a pytree of parameters, optimiser state, step count
  and training metrics accumulated on the devices (read them with
  :meth:`Stepper.read_metrics`, e.g. every ``log_every`` steps).
* :meth:`Stepper.train_step`: loss, gradients and the optimiser update; the
  state's buffers are donated. With a
  :class:`~deq_clrs.training.network.Alignment`, the loss includes DEAR's
  alignment regulariser.
* :meth:`Stepper.evaluate`: postprocessed predictions and the task loss of
  a batch, from one forward pass of the evaluation network.
* :meth:`Stepper.evaluate_to_stop`: the same for a model with learned
  termination, read at the first step it predicts to stop.

An evaluation network (DEAR's larger solver budget, its statistics log) is a
second ``hk.transform`` with the same parameter names: it takes the training
parameters as they are.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import clrs
import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from deq_clrs import integration
from deq_clrs.training import losses
from deq_clrs.training import network
from deq_clrs.training import parallel
from deq_clrs.training.network import Params

# How BaselineModel.predict postprocesses outputs.
SINKHORN_TEMPERATURE = 0.1
SINKHORN_STEPS = 50


class TrainState(NamedTuple):
  """Everything a training step reads and writes (replicated on the mesh).

  Attributes:
    params: Haiku parameters of the network.
    opt_state: optax state of the optimiser.
    step: int32 ``[]``, steps taken.
    loss: float32 ``[]``, the loss of the last step.
    loss_sum: float32 ``[]``, sum of the losses since the metrics were last
      read.
    loss_steps: int32 ``[]``, steps in ``loss_sum``.
  """
  params: Params
  opt_state: optax.OptState
  step: jax.Array
  loss: jax.Array
  loss_sum: jax.Array
  loss_steps: jax.Array


def host_train_state(params: Params, opt_state: optax.OptState,
                     step: int = 0) -> TrainState:
  """A training state after ``step`` steps on the host, as a checkpoint
  restores it: its parameters and optimiser state, the step as int32 ``[]``,
  and the running loss metrics afresh (``loss`` NaN, nothing summed)."""
  return TrainState(params=params, opt_state=opt_state,
                    step=np.int32(step), loss=np.float32(np.nan),
                    loss_sum=np.float32(0), loss_steps=np.int32(0))


def make_optimizer(learning_rate: float,
                   grad_clip: float) -> optax.GradientTransformation:
  """Adam; with ``grad_clip > 0`` the gradient's global norm is clipped
  first. The same transformations (and so the same state tree) as
  ``BaselineModel``."""
  if grad_clip > 0:
    return optax.chain(optax.clip_by_global_norm(grad_clip),
                       optax.scale_by_adam(),
                       optax.scale(-learning_rate))
  return optax.adam(learning_rate)


def first_stop(go_on: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Where each graph stops, from its "goes on after this step" logits.

  Args:
    go_on: ``[S, B]`` logits after processor steps ``0 .. S-1``.

  Returns:
    ``(stop [B] int32, stopped [B] bool)``: the first step whose logit is
    below 0 (the probability of going on below 0.5), or ``S - 1`` for a
    graph that never stops (``stopped`` False).
  """
  below = go_on < 0
  stopped = jnp.any(below, axis=0)
  stop = jnp.where(stopped, jnp.argmax(below, axis=0), go_on.shape[0] - 1)
  return stop.astype(jnp.int32), stopped


class Stepper:
  """Jitted training and evaluation steps of one network over a mesh.

  Every method takes and returns global arrays: a host batch is placed on
  the mesh (its graphs sharded over the devices), parameters and states
  stay replicated on the devices, and what comes back to the host is only
  what the caller reads (predictions; losses when it converts them).
  """

  def __init__(self, *, spec: clrs.Spec, net: hk.Transformed,
               optimizer: optax.GradientTransformation, mesh: Mesh,
               decode_hints: bool, eval_net: hk.Transformed | None = None,
               alignment: network.Alignment | None = None,
               pointers_over_edges: bool = False):
    """
    Args:
      spec: the algorithm's CLRS spec.
      net: the training network (:func:`build_network`).
      optimizer: e.g. :func:`make_optimizer`.
      mesh: a 1-D ``'data'`` mesh (:func:`parallel.make_mesh`).
      decode_hints: whether the network predicts hints (they enter the
        loss).
      eval_net: the network that predicts (default: ``net``); it must have
        the same parameter names.
      alignment: adds DEAR's alignment regulariser to the training loss;
        ``net`` must then be a ``hk.transform_with_state`` network whose
        equilibrium processor samples its trajectory, and every training
        step needs the true lengths.
      pointers_over_edges: the loss of output node pointers over each
        node's neighbours only (``losses.task_loss``), in training and
        evaluation.
    """
    self.spec = spec
    self.net = net
    self.eval_net = net if eval_net is None else eval_net
    self.optimizer = optimizer
    self.mesh = mesh
    self.decode_hints = decode_hints
    self.alignment = alignment
    self.pointers_over_edges = pointers_over_edges
    replicated = self.replicated = NamedSharding(mesh, P())
    self._train_step = jax.jit(self._train_step_fn, donate_argnums=0,
                               static_argnames=('steps',),
                               out_shardings=replicated)
    self._loss = jax.jit(self._loss_fn, static_argnames=('steps',),
                         out_shardings=replicated)
    self._loss_and_grads = jax.jit(self._loss_and_grads_fn,
                                   static_argnames=('steps',),
                                   out_shardings=replicated)
    self._evaluate = jax.jit(self._evaluate_fn, out_shardings=replicated)
    self._predict = jax.jit(
        self._predict_fn, static_argnames=('return_hints',
                                           'return_all_outputs'),
        out_shardings=replicated)
    self._evaluate_to_stop = jax.jit(
        self._evaluate_to_stop_fn,
        static_argnames=('hint', 'cap', 'with_loss', 'at_true_length'),
        out_shardings=replicated)
    self._read_metrics = jax.jit(self._read_metrics_fn, donate_argnums=0,
                                 out_shardings=replicated)
    self._copy = jax.jit(lambda tree: jax.tree_util.tree_map(jnp.copy, tree),
                         out_shardings=replicated)

  @property
  def num_devices(self) -> int:
    return self.mesh.devices.size

  # State.
  def init_params(self, seed: int, features: clrs.Features) -> Params:
    """Initial parameters, replicated (as ``BaselineModel.init(features,
    seed)`` draws them)."""
    init = jax.jit(lambda key, feats: self.net.init(
        key, feats, True, algorithm_index=-1, return_hints=False,
        return_all_outputs=False))
    params = init(jax.random.PRNGKey(seed), [features])
    if self.alignment is not None:
      params, _ = params  # The state is rewritten by every pass.
    return self.replicate(jax.device_get(params))

  def init(self, seed: int, features: clrs.Features) -> TrainState:
    """A fresh training state with parameters drawn from ``seed``."""
    return self.state(self.init_params(seed, features))

  def state(self, params: Params, opt_state: optax.OptState | None = None,
            step: int = 0) -> TrainState:
    """A training state from (host or device) parameters and optimiser state
    (default: a fresh one), e.g. restored from a checkpoint."""
    if opt_state is None:
      opt_state = self.optimizer.init(parallel.to_host(params))
    return self.replicate(host_train_state(params, opt_state, step))

  def _shard(self, lengths: np.ndarray | None) -> jax.Array | None:
    """Per-graph values ([B]) split over the mesh like the batch."""
    if lengths is None:
      return None
    return parallel.shard(self.mesh, np.asarray(lengths))

  def place(self, feedback: clrs.Feedback) -> clrs.Feedback:
    """A global batch placed on the mesh, sharded by graph, as
    :meth:`train_step` places it (which passes it through unchanged)."""
    return parallel.shard(self.mesh, feedback)

  def replicate(self, tree: Any) -> Any:
    """A host (or device) pytree, copied onto every device of the mesh."""
    return parallel.replicate(self.mesh, tree)

  def copy(self, tree: Any) -> Any:
    """A device copy of a replicated pytree (e.g. parameters to keep while
    the state they came from is donated to the next step)."""
    return self._copy(tree)

  # Training.
  def _loss_fn(self, params: Params, key: jax.Array,
               feedback: clrs.Feedback, lengths: jax.Array | None = None,
               steps: int | None = None) -> jax.Array:
    args = ([feedback.features],)
    kwargs = dict(repred=False, algorithm_index=0, return_hints=True,
                  return_all_outputs=False)
    if self.alignment is None:
      outs, hint_preds = self.net.apply(params, key, *args, **kwargs)
    else:
      (outs, hint_preds), net_state = self.net.apply(params, {}, key, *args,
                                                     **kwargs)
    loss = losses.task_loss(feedback, outs,
                            hint_preds if self.decode_hints else None,
                            pointers_over_edges=self.pointers_over_edges)
    if self.alignment is not None:
      if lengths is None or steps is None:
        raise ValueError('the alignment regulariser needs the true lengths '
                         'and steps of every training batch')
      loss = loss + self.alignment.weight * self.alignment.loss(
          net_state, jax.random.fold_in(key, 1), feedback.features, lengths,
          steps)
    return loss

  def _loss_and_grads_fn(self, params, key, feedback, lengths=None,
                         steps=None):
    return jax.value_and_grad(self._loss_fn)(params, key, feedback, lengths,
                                             steps)

  def _train_step_fn(self, state: TrainState, key: jax.Array,
                     feedback: clrs.Feedback, lengths: jax.Array | None = None,
                     steps: int | None = None) -> TrainState:
    key = jax.random.fold_in(key, state.step)
    loss, grads = self._loss_and_grads_fn(state.params, key, feedback,
                                          lengths, steps)
    updates, opt_state = self.optimizer.update(grads, state.opt_state,
                                               state.params)
    params = optax.apply_updates(state.params, updates)
    return TrainState(params=params, opt_state=opt_state,
                      step=state.step + 1, loss=loss,
                      loss_sum=state.loss_sum + loss,
                      loss_steps=state.loss_steps + 1)

  def train_step(self, state: TrainState, key: jax.Array,
                 feedback: clrs.Feedback, lengths: np.ndarray | None = None,
                 steps: int | None = None) -> TrainState:
    """One optimiser step on a global batch; does not wait for it.

    Args:
      state: the current state; its buffers are donated (do not use it
        again).
      key: base PRNG key; the step uses ``fold_in(key, state.step)``.
      feedback: a global batch (``[B, ...]``, hints ``[T, B, ...]``); the
        devices must divide B.
      lengths: with :class:`Alignment` only: the graphs' true lengths [B].
      steps: with :class:`Alignment` only: the teacher's steps (the longest
        true length - 1; one compilation per value).

    Returns:
      The next state; ``state.loss`` is this step's loss.
    """
    return self._train_step(state, self.replicate(key),
                            parallel.shard(self.mesh, feedback),
                            self._shard(lengths), steps=steps)

  def loss(self, params: Params, key: jax.Array, feedback: clrs.Feedback,
           lengths: np.ndarray | None = None,
           steps: int | None = None) -> jax.Array:
    """The training loss (replicated), without gradients (``lengths`` and
    ``steps`` as for :meth:`train_step`)."""
    return self._loss(params, self.replicate(key),
                      parallel.shard(self.mesh, feedback),
                      self._shard(lengths), steps=steps)

  def loss_and_grads(self, params: Params, key: jax.Array,
                     feedback: clrs.Feedback,
                     lengths: np.ndarray | None = None,
                     steps: int | None = None) -> tuple[jax.Array, Params]:
    """The training loss and its gradients (replicated), without a step."""
    return self._loss_and_grads(params, self.replicate(key),
                                parallel.shard(self.mesh, feedback),
                                self._shard(lengths), steps=steps)

  def _read_metrics_fn(self, state: TrainState):
    mean = state.loss_sum / jnp.maximum(state.loss_steps, 1)
    metrics = {'loss': state.loss, 'loss_mean': mean}
    return state._replace(loss_sum=jnp.zeros_like(state.loss_sum),
                          loss_steps=jnp.zeros_like(state.loss_steps)), metrics

  def read_metrics(self, state: TrainState
                   ) -> tuple[TrainState, dict[str, float]]:
    """The training metrics, on the host; resets the running mean.

    Returns:
      ``(state, {'loss': last step's loss, 'loss_mean': mean loss of the
      steps since the last read})``; ``state`` (donated) is replaced.
    """
    state, metrics = self._read_metrics(state)
    return state, {k: float(v) for k, v in parallel.to_host(metrics).items()}

  # Evaluation.
  def _postprocess(self, outs: dict[str, jax.Array]
                   ) -> dict[str, clrs.DataPoint]:
    return clrs.decoders.postprocess(
        self.spec, outs, sinkhorn_temperature=SINKHORN_TEMPERATURE,
        sinkhorn_steps=SINKHORN_STEPS, hard=True)

  def _apply_eval(self, params, key, *args, **kwargs):
    """``(eval_net's output, solver statistics or None)``: an equilibrium
    processor's statistics come as Haiku state (``stats_in_state``)."""
    if isinstance(self.eval_net, hk.TransformedWithState):
      out, state = self.eval_net.apply(params, {}, key, *args, **kwargs)
      return out, network.processor_state(
          state)[integration.SOLVER_STATS_STATE]
    return self.eval_net.apply(params, key, *args, **kwargs), None

  def _evaluate_fn(self, params, key, feedback, weights):
    (outs, hint_preds), stats = self._apply_eval(
        params, key, [feedback.features], repred=True, algorithm_index=0,
        return_hints=self.decode_hints, return_all_outputs=False)
    loss = losses.task_loss(feedback, outs,
                            hint_preds if self.decode_hints else None,
                            weights, self.pointers_over_edges)
    return self._postprocess(outs), loss, stats

  def evaluate(self, params: Params, key: jax.Array, feedback: clrs.Feedback
               ) -> tuple[dict[str, clrs.DataPoint], jax.Array]:
    """Predictions and task loss of a batch of any size, in one pass.

    A batch the devices do not divide is padded with copies of its last
    graph, which the loss gives no weight and the predictions leave out.

    Args:
      params: replicated parameters.
      key: PRNG key.
      feedback: a global batch of B graphs with its ground truth.

    Returns:
      ``(predictions, loss)``: postprocessed output DataPoints on the host
      (``[B, ...]``, as ``BaselineModel.predict`` gives them) and the task
      loss, a replicated float32 ``[]`` device scalar (not waited for).
    """
    preds, loss, _ = self.evaluate_with_stats(params, key, feedback)
    return preds, loss

  def evaluate_with_stats(self, params: Params, key: jax.Array,
                          feedback: clrs.Feedback
                          ) -> tuple[dict[str, clrs.DataPoint], jax.Array,
                                     Any]:
    """:meth:`evaluate`, and the solver statistics of an evaluation network
    whose equilibrium processor writes them as Haiku state
    (``solvers.SolverStats`` of host arrays [B]; None for other
    networks)."""
    padded, weights, batch = parallel.pad_to_devices(feedback,
                                                     self.num_devices)
    preds, loss, stats = self._evaluate(
        params, self.replicate(key), parallel.shard(self.mesh, padded),
        parallel.shard(self.mesh, weights))
    if stats is not None:
      stats = parallel.first_graphs(parallel.to_host(stats), batch, 0)
    return parallel.first_graphs(parallel.to_host(preds), batch, 0), loss, stats

  def _predict_fn(self, params, key, features, *, return_hints,
                  return_all_outputs):
    (outs, hint_preds), _ = self._apply_eval(
        params, key, [features], repred=True, algorithm_index=0,
        return_hints=return_hints, return_all_outputs=return_all_outputs)
    return self._postprocess(outs), hint_preds

  def predict(self, params: Params, key: jax.Array, features: clrs.Features,
              return_hints: bool = False, return_all_outputs: bool = False
              ) -> tuple[dict[str, clrs.DataPoint], Any]:
    """``BaselineModel.predict`` on a batch of any size, on the host.

    Returns:
      ``(outputs, hint logits)``: postprocessed outputs ``[B, ...]`` (``[S,
      B, ...]`` after every step with ``return_all_outputs``) and, with
      ``return_hints``, a list over steps of ``{name: [B, ...]}``.
    """
    padded, _, batch = parallel.pad_to_devices(features, self.num_devices)
    outs, hints = self._predict(
        params, self.replicate(key), parallel.shard(self.mesh, padded),
        return_hints=return_hints, return_all_outputs=return_all_outputs)
    outs = parallel.first_graphs(parallel.to_host(outs), batch,
                                 1 if return_all_outputs else 0)
    return outs, parallel.first_graphs(parallel.to_host(hints), batch, 0)

  def _evaluate_to_stop_fn(self, params, key, feedback, weights, *, hint,
                           cap, with_loss, at_true_length):
    features = feedback.features
    steps = features.hints[0].data.shape[0]

    def run(lengths):
      # CLRS's Net freezes each graph's outputs after processor step
      # lengths - 2 (step 0 for a length of 1); the lengths do nothing else.
      # Only the termination hint is stacked over the steps, never the
      # outputs: those of every step would take T x B x N^3 floats for an
      # edge pointer (Floyd-Warshall: 17 GB for 50 graphs of 64 nodes run
      # to the 5N cap).
      return self.eval_net.apply(
          params, key, [features._replace(lengths=lengths)], repred=True,
          algorithm_index=0, return_hints=True, return_all_outputs=False)

    # First pass: the hint logits of every step (independent of the
    # lengths), with the outputs at the true lengths where they are read.
    true_read = with_loss or at_true_length
    outs, hint_preds = run(features.lengths if true_read else
                           jnp.full_like(features.lengths, steps))
    go_on = jnp.stack([h[hint] for h in hint_preds[:cap]])
    stop, stopped = first_stop(go_on)
    if at_true_length:
      read = outs
    else:
      # Second pass: the outputs after each graph's own stop step.
      read, _ = run((stop + 2).astype(features.lengths.dtype))
    preds = self._postprocess(read)
    loss = jnp.float32(jnp.nan)
    if with_loss:
      loss = losses.task_loss(feedback, outs, hint_preds, weights,
                              self.pointers_over_edges)
    return preds, stop, stopped, loss

  def evaluate_to_stop(self, params: Params, key: jax.Array,
                       feedback: clrs.Feedback, *, hint: str, cap: int,
                       with_loss: bool, at_true_length: bool = False
                       ) -> tuple[dict[str, clrs.DataPoint], np.ndarray,
                                  np.ndarray, jax.Array]:
    """A learned-termination model run to a cap and read where it stops.

    The network runs every step of ``feedback``'s hints (``T`` of them) for
    every graph (the true lengths reach neither the stops nor the outputs
    read there: they only pick the outputs of the loss and of the
    diagnostic read); each graph's outputs
    are read after the first of processor steps ``0 .. cap-1`` whose
    ``hint`` logit is below 0 (after step ``cap - 1`` if none is). That
    takes two passes (the stops, then the outputs frozen at them), so
    memory does not grow with ``T`` times the outputs' size; the
    diagnostic read at the true lengths takes one.

    Args:
      params: replicated parameters.
      key: PRNG key.
      feedback: a global batch whose only hint is the termination hint,
        ``[T, B]`` with ``T >= cap + 1``.
      hint: the termination hint's name.
      cap: steps the graphs may take.
      with_loss: also return the task loss at the true lengths of
        ``feedback`` (outputs at each graph's length, the termination hint
        over its steps), from the same pass: that needs ``T`` at least the
        longest trajectory.
      at_true_length: a diagnostic, not the model's score: read the
        predictions at the true lengths of ``feedback`` instead of at the
        predicted stop (the stop step is still returned); ``T`` must be at
        least the longest trajectory.

    Returns:
      ``(predictions [B, ...] on the host, stop step [B], stopped [B],
      loss)``; the loss is a replicated float32 ``[]`` device scalar (NaN
      without ``with_loss``).
    """
    padded, weights, batch = parallel.pad_to_devices(feedback,
                                                     self.num_devices)
    preds, stop, stopped, loss = self._evaluate_to_stop(
        params, self.replicate(key), parallel.shard(self.mesh, padded),
        parallel.shard(self.mesh, weights), hint=hint, cap=cap,
        with_loss=with_loss, at_true_length=at_true_length)
    preds, stop, stopped = parallel.first_graphs(
        parallel.to_host((preds, stop, stopped)), batch, 0)
    return preds, stop, stopped, loss
