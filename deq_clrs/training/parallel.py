"""Data-parallel CLRS models over a ``jax.sharding`` mesh, one host or many.

CLRS's ``BaselineModel`` switches to ``jax.pmap`` as soon as a host has more
than one device, and that path calls ``jax.device_put_replicated``, which jax
0.10 removed. :class:`DataParallelBaselineModel` keeps CLRS's model, losses
and optimiser but compiles every step with ``jax.jit`` over a mesh: the batch
axis of the data is sharded over the mesh's ``'data'`` axis, parameters and
optimiser state are replicated, and XLA inserts the gradient all-reduce. On a
mesh of one device it is exactly CLRS's single-device path.

Multi-host: call :func:`initialize_distributed` first. The mesh then spans
every process's devices, and every process passes the same *global* batch to
``feedback`` / ``predict`` (our training data is a deterministic function of
the seed and step, so each process can build it); each process places only
the shards that live on its own devices.
"""

from __future__ import annotations

import os
from typing import Any
from typing import Sequence

import clrs
import jax
import numpy as np
from clrs._src import baselines
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = 'data'


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  """A 1-D ``'data'`` mesh over ``devices`` (default: every global device)."""
  devices = list(jax.devices() if devices is None else devices)
  return Mesh(np.array(devices), (DATA_AXIS,))


def initialize_distributed(coordinator_address: str | None = None,
                           num_processes: int | None = None,
                           process_id: int | None = None) -> bool:
  """Joins a multi-process JAX job when there is one; returns whether it did.

  Must run before anything else touches JAX's backend. With explicit
  arguments, uses them (CPU devices talk through gloo). Without,
  it initialises only where a scheduler that JAX detects on its own launched
  the process (SLURM with several tasks, or a TPU VM slice), and is a no-op
  for a single local process.
  """
  if coordinator_address is not None:
    # CPU devices need a collectives implementation to talk across
    # processes; the setting does not touch GPU or TPU backends. (Asking
    # which backend is in use would start it, which must come after this.)
    jax.config.update('jax_cpu_collectives_implementation', 'gloo')
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes,
                               process_id=process_id)
    return True
  slurm_tasks = int(os.environ.get('SLURM_NTASKS', '1'))
  on_tpu_pod = 'TPU_WORKER_HOSTNAMES' in os.environ or (
      'MEGASCALE_COORDINATOR_ADDRESS' in os.environ)
  if slurm_tasks > 1 or on_tpu_pod:
    jax.distributed.initialize()
    return True
  return False


def _batch_specs(feedback_or_features: Any) -> Any:
  """PartitionSpecs that shard the batch axis of CLRS data."""
  batch0 = lambda _: P(DATA_AXIS)
  if isinstance(feedback_or_features, clrs.Feedback):
    return clrs.Feedback(features=_batch_specs(feedback_or_features.features),
                         outputs=jax.tree_util.tree_map(
                             batch0, feedback_or_features.outputs))
  features = feedback_or_features
  return clrs.Features(
      inputs=jax.tree_util.tree_map(batch0, features.inputs),
      # Hints are time-major: [T, B, ...].
      hints=jax.tree_util.tree_map(lambda _: P(None, DATA_AXIS),
                                   features.hints),
      lengths=P(DATA_AXIS))


class DataParallelBaselineModel(clrs.models.BaselineModel):
  """``clrs.models.BaselineModel`` trained data-parallel over a mesh.

  Same constructor as ``BaselineModel`` plus ``mesh`` (default: all devices).
  The global batch size must be divisible by the number of devices.
  """

  def __init__(self, *args, mesh: Mesh | None = None, **kwargs):
    self.mesh = make_mesh() if mesh is None else mesh
    super().__init__(*args, **kwargs)

  @property
  def num_devices(self) -> int:
    return self.mesh.devices.size

  def _create_net_fns(self, *args, **kwargs):
    super()._create_net_fns(*args, **kwargs)
    # Replace CLRS's pmap (or plain jit) by jit over the mesh.
    self._maybe_pmean = lambda x: x
    replicated = self._replicated = NamedSharding(self.mesh, P())
    self.jitted_grad = jax.jit(self._compute_grad, static_argnums=3,
                               out_shardings=replicated)
    self.jitted_feedback = jax.jit(self._feedback, static_argnums=4,
                                   donate_argnums=(0, 3),
                                   out_shardings=replicated)
    self.jitted_predict = jax.jit(self._predict, static_argnums=(3, 4, 5),
                                  out_shardings=replicated)
    self.jitted_accum_opt_update = jax.jit(
        baselines.accum_opt_update, static_argnums=(3, 4),
        donate_argnums=(0, 2), out_shardings=replicated)

  # Parameters and optimiser state: replicated over the mesh.
  @property
  def params(self):
    if self._device_params is None:
      return None
    return _to_host(self._device_params)

  @params.setter
  def params(self, params):
    self._device_params = self._replicate(params)

  @property
  def opt_state(self):
    if self._device_opt_state is None:
      return None
    return _to_host(self._device_opt_state)

  @opt_state.setter
  def opt_state(self, opt_state):
    self._device_opt_state = self._replicate(opt_state)

  def _replicate(self, tree):
    """Copies a host pytree onto every device of the mesh."""
    return jax.tree_util.tree_map(
        lambda x: jax.make_array_from_process_local_data(self._replicated,
                                                         np.asarray(x)), tree)

  def shard(self, data: Any) -> Any:
    """Places a global CLRS ``Feedback``/``Features`` batch on the mesh.

    Every process passes the same global batch; the batch axis is sharded
    over all devices and each process fills only its own devices' shards.
    """
    check_batch_divisible(_batch_size(data), self.num_devices)
    specs = _batch_specs(data)

    def place(x, spec):
      x = np.asarray(x)
      return jax.make_array_from_callback(
          x.shape, NamedSharding(self.mesh, spec), lambda index: x[index])

    return jax.tree_util.tree_map(place, data, specs)

  def compute_grad(self, rng_key, feedback, algorithm_index=None):
    algorithm_index = self._algorithm_index(algorithm_index)
    loss, grads = self.jitted_grad(self._device_params, self._replicate(
        rng_key), self.shard(feedback), algorithm_index)
    return _to_host(loss), _to_host(grads)

  def feedback(self, rng_key, feedback, algorithm_index=None):
    algorithm_index = self._algorithm_index(algorithm_index)
    loss, self._device_params, self._device_opt_state = self.jitted_feedback(
        self._device_params, self._replicate(rng_key), self.shard(feedback),
        self._device_opt_state, algorithm_index)
    return loss

  def predict(self, rng_key, features, algorithm_index=None,
              return_hints=False, return_all_outputs=False):
    """CLRS ``predict`` on a global batch of any size.

    A batch that the devices do not divide is padded with copies of its last
    graph, and the padding is cut from the predictions. Predictions come back
    replicated, so every process sees all of them.
    """
    algorithm_index = self._algorithm_index(algorithm_index)
    batch = _batch_size(features)
    pad = -batch % self.num_devices
    if pad:
      features = _pad_batch(features, pad)
    out = self.jitted_predict(self._device_params, self._replicate(rng_key),
                              self.shard(features), algorithm_index,
                              return_hints, return_all_outputs)
    if pad:
      outs, hints = out[0], out[1]
      cut = lambda x, axis: np.take(np.asarray(x), np.arange(batch), axis)
      outs = jax.tree_util.tree_map(
          lambda x: cut(x, 1 if return_all_outputs else 0), outs)
      hints = jax.tree_util.tree_map(lambda x: cut(x, 0), hints)
      out = (outs, hints) + tuple(out[2:])
    return out

  def update_model_params_accum(self, grads) -> None:
    self._device_params, self._device_opt_state = (
        self.jitted_accum_opt_update(self._device_params,
                                     self._replicate(grads),
                                     self._device_opt_state, self.opt,
                                     self._freeze_processor))

  def _algorithm_index(self, algorithm_index):
    if algorithm_index is None:
      if len(self._spec) != 1:
        raise ValueError('algorithm_index is required with several '
                         'algorithms')
      return 0
    return algorithm_index


def check_batch_divisible(batch: int, num_devices: int) -> None:
  """Raises ValueError unless a training batch splits evenly over devices."""
  if batch % num_devices:
    raise ValueError(
        f'the batch size {batch} must be divisible by the {num_devices} '
        'devices of the mesh (set batch_size to a multiple, or use fewer '
        'devices)')


def _pad_batch(features: clrs.Features, pad: int) -> clrs.Features:
  """Appends ``pad`` copies of the last graph to a ``Features`` batch."""
  def grow(x, axis):
    x = np.asarray(x)
    last = np.take(x, [x.shape[axis] - 1] * pad, axis=axis)
    return np.concatenate([x, last], axis=axis)
  return clrs.Features(
      inputs=jax.tree_util.tree_map(lambda x: grow(x, 0), features.inputs),
      hints=jax.tree_util.tree_map(lambda x: grow(x, 1), features.hints),
      lengths=grow(features.lengths, 0))


def _batch_size(data: Any) -> int:
  features = data.features if isinstance(data, clrs.Feedback) else data
  return int(np.shape(features.lengths)[0])


def _to_host(tree: Any) -> Any:
  """Fetches replicated arrays (fully addressable on every process)."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      x = x.addressable_data(0)
    return np.asarray(jax.device_get(x))
  return jax.tree_util.tree_map(get, tree)
