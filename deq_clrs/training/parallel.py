"""The data-parallel mesh, multi-host start-up and placement of CLRS data.

Training and evaluation steps (:mod:`deq_clrs.training.step`) are compiled
with ``jax.jit`` over a 1-D ``'data'`` mesh: the batch axis of the data is
sharded over it, parameters and optimiser state are replicated, and XLA
inserts the gradient all-reduce. On a mesh of one device this is plain
single-device ``jax.jit``.

Multi-host: call :func:`initialize_distributed` first. The mesh then spans
every process's devices, and every process passes the same *global* batch
(our training data is a deterministic function of the seed and step, so each
process can build it); each process places only the shards that live on its
own devices.
"""

from __future__ import annotations

import os
from typing import Any
from typing import Sequence

import clrs
import jax
import numpy as np
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


def batch_specs(data: Any) -> Any:
  """PartitionSpecs that shard the batch axis of CLRS data.

  Args:
    data: a ``clrs.Feedback`` or ``clrs.Features`` (inputs and outputs
      ``[B, ...]``, hints time-major ``[T, B, ...]``, lengths ``[B]``), or
      any other pytree whose leaves are batch-major ``[B, ...]``.
  """
  batch0 = lambda _: P(DATA_AXIS)
  if isinstance(data, clrs.Feedback):
    return clrs.Feedback(features=batch_specs(data.features),
                         outputs=jax.tree_util.tree_map(batch0, data.outputs))
  if isinstance(data, clrs.Features):
    return clrs.Features(
        inputs=jax.tree_util.tree_map(batch0, data.inputs),
        hints=jax.tree_util.tree_map(lambda _: P(None, DATA_AXIS),
                                     data.hints),
        lengths=P(DATA_AXIS))
  return jax.tree_util.tree_map(batch0, data)


def replicate(mesh: Mesh, tree: Any) -> Any:
  """Copies a pytree (host or device arrays) onto every device of ``mesh``.

  Every process must pass the same values.
  """
  sharding = NamedSharding(mesh, P())

  def put(x):
    if isinstance(x, jax.Array) and x.sharding == sharding:
      return x
    return jax.make_array_from_process_local_data(sharding,
                                                  np.asarray(x))
  return jax.tree_util.tree_map(put, tree)


def shard(mesh: Mesh, data: Any) -> Any:
  """Places a global batch of CLRS data on the mesh, sharded by graph.

  Every process passes the same global batch; the batch axis is sharded
  over all devices of ``mesh`` and each process fills only its own
  devices' shards. Arrays already placed with that sharding (a batch the
  prefetch thread placed) are passed through without a copy.

  Raises:
    ValueError: the devices do not divide the batch.
  """
  check_batch_divisible(batch_size(data), mesh.devices.size)

  def place(x, spec):
    sharding = NamedSharding(mesh, spec)
    if isinstance(x, jax.Array) and x.sharding == sharding:
      return x
    x = np.asarray(x)
    return jax.make_array_from_callback(
        x.shape, sharding, lambda index: x[index])

  return jax.tree_util.tree_map(place, data, batch_specs(data))


def check_batch_divisible(batch: int, num_devices: int) -> None:
  """Raises ValueError unless a training batch splits evenly over devices."""
  if batch % num_devices:
    raise ValueError(
        f'the batch size {batch} must be divisible by the {num_devices} '
        'devices of the mesh (set batch_size to a multiple, or use fewer '
        'devices)')


def pad_batch(data: Any, pad: int) -> Any:
  """Appends ``pad`` copies of the last graph to a batch of CLRS data.

  Args:
    data: a ``clrs.Feedback`` or ``clrs.Features`` batch of B graphs.
    pad: graphs to add.

  Returns:
    The same structure with B + ``pad`` graphs (host arrays).
  """
  def grow(x, axis):
    x = np.asarray(x)
    last = np.take(x, [x.shape[axis] - 1] * pad, axis=axis)
    return np.concatenate([x, last], axis=axis)
  if isinstance(data, clrs.Feedback):
    return clrs.Feedback(
        features=pad_batch(data.features, pad),
        outputs=jax.tree_util.tree_map(lambda x: grow(x, 0), data.outputs))
  return clrs.Features(
      inputs=jax.tree_util.tree_map(lambda x: grow(x, 0), data.inputs),
      hints=jax.tree_util.tree_map(lambda x: grow(x, 1), data.hints),
      lengths=grow(data.lengths, 0))


def pad_to_devices(data: Any, num_devices: int
                   ) -> tuple[Any, np.ndarray, int]:
  """A batch of any size, padded to a multiple of the devices.

  Args:
    data: a ``clrs.Feedback`` or ``clrs.Features`` batch of B graphs.
    num_devices: the devices the batch will be sharded over.

  Returns:
    ``(data, weights, B)``: ``data`` with copies of its last graph
    appended (:func:`pad_batch`) up to the next multiple of
    ``num_devices`` (unchanged if there is none to add), ``weights``
    float32 [B + pad] (1 for the real graphs, 0 for the copies).
  """
  batch = batch_size(data)
  pad = -batch % num_devices
  if pad:
    data = pad_batch(data, pad)
  weights = np.concatenate([np.ones(batch, np.float32),
                            np.zeros(pad, np.float32)])
  return data, weights, batch


def first_graphs(tree: Any, batch: int, axis: int) -> Any:
  """The first ``batch`` graphs along ``axis`` of every host array (what
  a padded batch's results hold for its real graphs)."""
  return jax.tree_util.tree_map(
      lambda x: np.take(np.asarray(x), np.arange(batch), axis), tree)


def batch_size(data: Any) -> int:
  """Graphs in a batch: a ``clrs.Feedback``, ``clrs.Features`` or a pytree
  of batch-major arrays."""
  if isinstance(data, clrs.Feedback):
    data = data.features
  if isinstance(data, clrs.Features):
    return int(np.shape(data.lengths)[0])
  return int(np.shape(jax.tree_util.tree_leaves(data)[0])[0])


def to_host(tree: Any) -> Any:
  """Fetches replicated arrays (fully addressable on every process)."""
  def get(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
      x = x.addressable_data(0)
    return np.asarray(jax.device_get(x))
  return jax.tree_util.tree_map(get, tree)
