"""Trains a tiny DEAR model data-parallel and prints what the tests compare.

Run as a subprocess by deq_clrs/training/parallel_test.py, because the number
of devices and the distributed runtime are fixed when JAX starts:

    python tests/helpers/parallel_worker.py devices N
        one process, N forced CPU devices (and a 1-device reference run)
    python tests/helpers/parallel_worker.py process PORT ID COUNT
        process ID of COUNT on a loopback coordinator at PORT

The last line of stdout is a JSON object.
"""

import json
import os
import sys

mode = sys.argv[1]
if mode == 'devices':
  os.environ['XLA_FLAGS'] = (
      f'--xla_force_host_platform_device_count={int(sys.argv[2])}')

import jax  # noqa: E402

from deq_clrs.training import parallel  # noqa: E402

if mode == 'process':
  port, pid, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
  parallel.initialize_distributed(f'127.0.0.1:{port}', count, pid)

import clrs  # noqa: E402
import numpy as np  # noqa: E402

import deq_clrs  # noqa: E402

BATCH = 8
STEPS = 3


def global_batches():
  sampler, spec = clrs.build_sampler('bfs', num_samples=-1, length=12, seed=0)
  batches = [deq_clrs.one_shot_feedback(sampler.next(BATCH))
             for _ in range(STEPS)]
  odd = deq_clrs.one_shot_feedback(sampler.next(6))  # 4 devices: padded
  return batches, odd, spec


def train(mesh, batches, odd, spec):
  """Three steps of data-parallel training, then a prediction."""
  model = parallel.DataParallelBaselineModel(
      spec=spec, dummy_trajectory=batches[0],
      processor_factory=deq_clrs.get_processor_factory('deq_mpnn'),
      hidden_dim=16, encode_hints=False, decode_hints=False,
      learning_rate=1e-2, mesh=mesh)
  model.init(batches[0].features, 0)
  losses, grads = [], None
  for i, fb in enumerate(batches):
    if i == 0:
      _, grads = model.compute_grad(jax.random.PRNGKey(i), fb)
    losses.append(float(model.feedback(jax.random.PRNGKey(i), fb)))
  leaf = jax.tree_util.tree_leaves(model._device_params)[0]  # pylint: disable=protected-access
  preds, _ = model.predict(jax.random.PRNGKey(0), batches[0].features)
  odd_preds, _ = model.predict(jax.random.PRNGKey(0), odd.features)
  flat_grads = np.concatenate([np.ravel(g) for g in
                               jax.tree_util.tree_leaves(grads)])
  return {
      'losses': losses,
      'grads': flat_grads.tolist(),
      'param_devices': len(leaf.sharding.device_set),
      'pred_shape': list(np.shape(preds['pi'].data)),
      'pred_pi': np.asarray(preds['pi'].data).tolist(),
      'odd_pred_pi': np.asarray(odd_preds['pi'].data).tolist(),
  }


full, odd, spec = global_batches()
if mode == 'devices':
  out = {'num_devices': jax.device_count(),
         'sharded': train(parallel.make_mesh(), full, odd, spec),
         'single': train(parallel.make_mesh(jax.devices()[:1]), full, odd,
                         spec)}
else:
  # Every process builds the same global batches; each places its shards.
  out = {'process_index': jax.process_index(),
         'process_count': jax.process_count(),
         'num_devices': jax.device_count(),
         'run': train(parallel.make_mesh(), full, odd, spec)}
print(json.dumps(out))
