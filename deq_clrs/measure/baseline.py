"""CLRS's stock ``BaselineModel`` with a ``deq_clrs`` processor: the drop-in
path, through CLRS's public API only.

A user builds ``clrs.models.BaselineModel(..., processor_factory=
deq_clrs.get_processor_factory('deq_mpnn'))`` on one-shot data
(``deq_clrs.one_shot_feedback``) and calls ``init``, ``feedback`` and
``predict``; every measurement of :mod:`deq_clrs.measure` does the same.
This module adds what a measurement needs on top:

* :func:`baseline_model`: the model as the measurements configure it;
* :func:`init_model`: ``BaselineModel.init`` itself, run under ``jax.jit``
  (CLRS runs it eagerly: tens of seconds for an equilibrium processor on
  a CPU; the jitted call draws the same parameters);
* :func:`feedback_memory` / :func:`predict_memory`: XLA's account of the
  memory of one compiled ``feedback`` / ``predict`` call, from lowering a
  function of ours that calls the public method.

Both tracing tricks rely on what ``BaselineModel``'s public properties do
on one device (``params`` and ``opt_state`` pass values through
``jax.device_put`` / ``jax.device_get``, which leave tracers alone), so
they need one local device; on several, CLRS pmaps and :func:`init_model`
falls back to the eager ``init``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import clrs
import jax

#: The learning rate and clipping of every measured model (CLRS's Adam).
LEARNING_RATE = 3e-4
GRAD_CLIP = 1.0


def baseline_model(spec: clrs.Spec, dummy: clrs.Feedback,
                   factory: Callable[[int], Any], hidden_dim: int,
                   learning_rate: float = LEARNING_RATE
                   ) -> clrs.models.BaselineModel:
  """A stock single-algorithm ``BaselineModel`` without hints.

  Args:
    spec: the algorithm's CLRS spec.
    dummy: a batch of the data the model will see (one-shot for an
      equilibrium processor); gives the feature sizes.
    factory: the processor factory (``out_size -> Processor``), e.g.
      ``deq_clrs.get_processor_factory('deq_mpnn')``.
    hidden_dim: latent width H.
    learning_rate: Adam's learning rate (gradients clipped to norm 1).

  Returns:
    The model, without parameters (call :func:`init_model`).
  """
  return clrs.models.BaselineModel(
      spec=spec, dummy_trajectory=dummy, processor_factory=factory,
      hidden_dim=hidden_dim, encode_hints=False, decode_hints=False,
      learning_rate=learning_rate, grad_clip_max_norm=GRAD_CLIP)


def _one_device() -> bool:
  return jax.local_device_count() == 1


def init_model(model: clrs.models.BaselineModel, features: clrs.Features,
               seed: int) -> None:
  """``model.init(features, seed)``, compiled.

  The public ``init`` runs inside a function of ours under ``jax.jit``; what
  it set on the model (parameters, optimiser state and its skeleton) comes
  out as the jitted function's results and is set again, so the model ends
  as the eager ``init`` leaves it, with the same parameters.

  Args:
    model: a ``BaselineModel`` (e.g. from :func:`baseline_model`).
    features: a batch of the model's features ([B, N, ...] inputs).
    seed: the parameters' seed.
  """
  if not _one_device():
    model.init(features, seed)
    return

  def draw(feats: clrs.Features) -> tuple[Any, Any, Any]:
    model.init(feats, seed)
    return model.params, model.opt_state, model.opt_state_skeleton

  params, opt_state, skeleton = jax.jit(draw)(features)
  model.params, model.opt_state = params, opt_state
  model.opt_state_skeleton = skeleton


@contextlib.contextmanager
def _state_kept(model: clrs.models.BaselineModel) -> Iterator[None]:
  """Restores the model's parameters and optimiser state on exit (a
  traced call leaves tracers in them)."""
  if not _one_device():
    raise ValueError('compiled memory is measured on one device; CLRS '
                     f'pmaps over the {jax.local_device_count()} here')
  params, opt_state = model.params, model.opt_state
  try:
    yield
  finally:
    model.params, model.opt_state = params, opt_state


def memory_bytes(compiled: jax.stages.Compiled) -> int:
  """XLA's account of a compiled program's memory: arguments + outputs +
  temporaries - aliased (deterministic, unlike a process's resident
  size)."""
  m = compiled.memory_analysis()
  return int(m.argument_size_in_bytes + m.output_size_in_bytes
             + m.temp_size_in_bytes - m.alias_size_in_bytes)


def feedback_memory(model: clrs.models.BaselineModel,
                    feedback: clrs.Feedback) -> int:
  """Bytes XLA needs for one compiled ``model.feedback`` (a training step)
  on ``feedback`` (a batch of B graphs), parameters and optimiser state
  donated as ``BaselineModel`` donates them."""
  def step(params: Any, opt_state: Any, key: jax.Array,
           fb: clrs.Feedback) -> tuple[Any, Any, Any]:
    model.params, model.opt_state = params, opt_state
    loss = model.feedback(key, fb)
    return loss, model.params, model.opt_state

  with _state_kept(model):
    lowered = jax.jit(step, donate_argnums=(0, 1)).lower(
        model.params, model.opt_state, jax.random.PRNGKey(0), feedback)
    return memory_bytes(lowered.compile())


def predict_memory(model: clrs.models.BaselineModel,
                   features: clrs.Features) -> int:
  """Bytes XLA needs for one compiled ``model.predict`` (inference) on
  ``features`` (a batch of B graphs)."""
  def step(params: Any, key: jax.Array, feats: clrs.Features) -> Any:
    model.params = params
    return model.predict(key, feats)

  with _state_kept(model):
    lowered = jax.jit(step).lower(model.params, jax.random.PRNGKey(0),
                                  features)
    return memory_bytes(lowered.compile())
