"""Task losses of CLRS outputs and hints, written against the public specs.

The same quantities as the loss of CLRS's ``BaselineModel`` (pinned by
``losses_test.py`` for every DEAR algorithm and model), plus a per-graph
weight so that an evaluation batch padded with copies of a graph (to fit
the devices) scores only its real graphs:

* outputs, per type: squared error (scalar), binary cross-entropy over the
  entries that are not masked out (mask), cross-entropy normalised by the
  number of positive entries (mask_one, categorical), cross-entropy of the
  pointed-to node (pointer), cross-entropy against the permutation matrix
  given log-probabilities (permutation pointer);
* hints (time-major, step 0 excluded: it is the input state), the same per
  step, averaged over the steps before each graph's length.

With ``pointers_over_edges`` the cross-entropy of an output node pointer
runs over the node's neighbours and itself only (the graph's adjacency, as
CLRS's network builds it: :func:`graph_adjacency`), as the authors' DEAR
decoder does, instead of over all N nodes as CLRS's loss does.

Shapes: B graphs, N nodes, T hint time steps, C categories.
"""

from __future__ import annotations

from collections.abc import Sequence

import clrs
import jax
import jax.numpy as jnp

EPS = 1e-12
_T = clrs.Type
_L = clrs.Location
# The logit a non-edge gets when the pointer loss runs over edges only: its
# softmax weight is exactly 0 in float32, and 0 * log-probability stays
# finite (an infinite logit would give NaN).
NON_EDGE_LOGIT = -1e9


def _expand(x: jax.Array, like: jax.Array) -> jax.Array:
  """Appends unit axes to ``x`` until it has the rank of ``like``."""
  return jnp.reshape(x, x.shape + (1,) * (like.ndim - x.ndim))


def _weights(weights: jax.Array | None, batch: int) -> jax.Array:
  if weights is None:
    return jnp.ones((batch,), jnp.float32)
  return jnp.asarray(weights, jnp.float32)


def _bce(logits: jax.Array, target: jax.Array) -> jax.Array:
  """Binary cross-entropy with logits, stable for large |logits|."""
  return (jnp.maximum(logits, 0) - logits * target
          + jnp.log1p(jnp.exp(-jnp.abs(logits))))


def _pointer_ce(logits: jax.Array, target: jax.Array,
                nb_nodes: int) -> jax.Array:
  """Cross-entropy of node indices ``target`` [...] under ``logits``
  [..., N]."""
  one_hot = jax.nn.one_hot(target, nb_nodes)
  return -jnp.sum(one_hot * jax.nn.log_softmax(logits), axis=-1)


def _weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  """Mean of ``values`` [B, ...] with each graph weighted by ``weights``."""
  w = jnp.broadcast_to(_expand(weights, values), values.shape)
  return jnp.sum(values * w) / jnp.sum(w)


def output_loss(truth: clrs.DataPoint, pred: jax.Array, nb_nodes: int,
                weights: jax.Array | None = None) -> jax.Array:
  """Loss of one output.

  Args:
    truth: the output's ground truth, data ``[B, ...]`` (``[B]``, ``[B, N]``,
      ``[B, N, N]``, ``[B, N, C]`` ...: its location and type decide).
    pred: the decoder's logits (log-probabilities for a permutation
      pointer), ``[B, ...]``: as ``truth`` for scalar and mask types, with a
      trailing N (pointers) or C (categorical) axis otherwise.
    nb_nodes: N.
    weights: ``[B]`` per-graph weights (default: all 1).

  Returns:
    A float32 scalar.
  """
  y = jnp.asarray(truth.data)
  w = _weights(weights, y.shape[0])
  kind = truth.type_
  if kind == _T.SCALAR:
    return _weighted_mean((pred - y) ** 2, w)
  if kind == _T.MASK:
    mask = (y != clrs.OutputClass.MASKED).astype(jnp.float32)
    mask = mask * _expand(w, mask)
    return jnp.sum(_bce(pred, y) * mask) / jnp.sum(mask)
  if kind in (_T.MASK_ONE, _T.CATEGORICAL):
    kept = y * (y != clrs.OutputClass.MASKED).astype(jnp.float32)
    gw = _expand(w, y)
    positives = jnp.sum((y == clrs.OutputClass.POSITIVE) * gw)
    return -jnp.sum(kept * jax.nn.log_softmax(pred) * gw) / positives
  if kind == _T.POINTER:
    return _weighted_mean(_pointer_ce(pred, y, nb_nodes), w)
  if kind == _T.PERMUTATION_POINTER:
    return _weighted_mean(-jnp.sum(y * pred, axis=-1), w)
  raise ValueError(f'no loss for output {truth.name!r} of type {kind!r}')


def _step_loss(kind: str, y: jax.Array, pred: jax.Array,
               nb_nodes: int) -> tuple[jax.Array, jax.Array]:
  """Per-entry hint loss and its mask, both ``[T-1, B, ...]``."""
  if kind == _T.SCALAR:
    loss = (pred - y) ** 2
    return loss, jnp.ones_like(loss)
  if kind == _T.MASK:
    return _bce(pred, y), (y != clrs.OutputClass.MASKED).astype(jnp.float32)
  if kind == _T.MASK_ONE:
    loss = -jnp.sum(y * jax.nn.log_softmax(pred), axis=-1, keepdims=True)
    return loss, jnp.ones_like(loss)
  if kind == _T.CATEGORICAL:
    loss = -jnp.sum(y * jax.nn.log_softmax(pred), axis=-1)
    mask = jnp.any(y == clrs.OutputClass.POSITIVE, axis=-1)
    return loss, mask.astype(jnp.float32)
  if kind == _T.POINTER:
    loss = _pointer_ce(pred, y, nb_nodes)
    return loss, jnp.ones_like(loss)
  if kind == _T.PERMUTATION_POINTER:
    loss = -jnp.sum(y * pred, axis=-1)
    return loss, jnp.ones_like(loss)
  raise ValueError(f'no loss for hints of type {kind!r}')


def hint_loss(truth: clrs.DataPoint, preds: jax.Array, lengths: jax.Array,
              nb_nodes: int, weights: jax.Array | None = None) -> jax.Array:
  """Loss of one hint over the steps each graph takes.

  Args:
    truth: the hint's ground truth, time-major data ``[T, B, ...]``.
    preds: the decoder's logits after processor steps ``0 .. T-2``, stacked
      ``[T-1, B, ...]`` (compared with truth steps ``1 .. T-1``).
    lengths: ``[B]`` steps of each graph's trajectory; step ``t`` of the
      predictions counts while ``t + 1 < lengths``.
    nb_nodes: N.
    weights: ``[B]`` per-graph weights (default: all 1).

  Returns:
    A float32 scalar.
  """
  y = jnp.asarray(truth.data)[1:]
  w = _weights(weights, y.shape[1])
  loss, mask = _step_loss(truth.type_, y, preds, nb_nodes)
  steps = jnp.arange(y.shape[0])[:, None]
  going = (jnp.asarray(lengths)[None, :] > steps + 1).astype(jnp.float32)
  mask = mask * _expand(going * w[None, :], loss)
  return jnp.sum(loss * mask) / jnp.maximum(jnp.sum(mask), EPS)


def num_nodes(features: clrs.Features) -> int:
  """N, from the first node or edge input (``[B, N, ...]``)."""
  for dp in features.inputs:
    if dp.location in (clrs.Location.NODE, clrs.Location.EDGE):
      return int(dp.data.shape[1])
  raise ValueError('the features have no node or edge input')


def graph_adjacency(features: clrs.Features) -> jax.Array:
  """The adjacency [B, N, N] (0/1 float32) that CLRS's network passes
  messages along and masks pointers to: self-loops, and both directions of
  every edge-mask input and every node-pointer input (what CLRS's
  ``encoders.accum_adj_mat`` adds up; pinned by a test)."""
  nb_nodes = num_nodes(features)
  batch = features.inputs[0].data.shape[0]
  adj = jnp.broadcast_to(jnp.eye(nb_nodes, dtype=jnp.float32),
                         (batch, nb_nodes, nb_nodes))
  for dp in features.inputs:
    data = jnp.asarray(dp.data, jnp.float32)
    if dp.location == _L.NODE and dp.type_ in (_T.POINTER,
                                               _T.PERMUTATION_POINTER):
      if data.ndim == 2:  # node indices [B, N], as the samplers give them
        data = jax.nn.one_hot(dp.data, nb_nodes)
      adj = adj + ((data + jnp.swapaxes(data, 1, 2)) > 0.5)
    elif dp.location == _L.EDGE and dp.type_ == _T.MASK:
      adj = adj + ((data + jnp.swapaxes(data, 1, 2)) > 0.0)
  return (adj > 0).astype(jnp.float32)


def over_edges(logits: jax.Array, adjacency: jax.Array) -> jax.Array:
  """Node-pointer logits [B, N, N] with every non-edge of ``adjacency``
  [B, N, N] set to :data:`NON_EDGE_LOGIT`."""
  return jnp.where(adjacency > 0.5, logits, NON_EDGE_LOGIT)


def task_loss(feedback: clrs.Feedback, output_preds: dict[str, jax.Array],
              hint_preds: Sequence[dict[str, jax.Array]] | None,
              weights: jax.Array | None = None,
              pointers_over_edges: bool = False) -> jax.Array:
  """Sum of the output losses and, given hint predictions, the hint losses.

  Args:
    feedback: ground truth; its lengths mask the hint steps.
    output_preds: logits per output name, ``[B, ...]``.
    hint_preds: per processor step, logits per hint name (``[B, ...]``), or
      None for a model that decodes no hints.
    weights: ``[B]`` per-graph weights (default: all 1).
    pointers_over_edges: the cross-entropy of each output node pointer over
      the node's neighbours and itself only (:func:`graph_adjacency`);
      hints keep CLRS's loss.
  """
  nb_nodes = num_nodes(feedback.features)
  adjacency = (graph_adjacency(feedback.features) if pointers_over_edges
               else None)
  total = jnp.float32(0.0)
  for truth in feedback.outputs:
    pred = output_preds[truth.name]
    if (adjacency is not None and truth.location == _L.NODE
        and truth.type_ == _T.POINTER):
      pred = over_edges(pred, adjacency)
    total += output_loss(truth, pred, nb_nodes, weights)
  if hint_preds is not None:
    for truth in feedback.features.hints:
      preds = jnp.stack([p[truth.name] for p in hint_preds])
      total += hint_loss(truth, preds, feedback.features.lengths, nb_nodes,
                         weights)
  return total
