"""Trains a tiny DEAR model data-parallel and prints what the tests compare.

Run as a subprocess by tests/test_parallel.py, because the number of devices
and the distributed runtime are fixed when JAX starts:

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

from deq_clrs import parallel  # noqa: E402

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
  return [deq_clrs.one_shot_feedback(sampler.next(BATCH))
          for _ in range(STEPS)], spec


def local_slice(fb, index, count):
  per = BATCH // count
  sl = lambda x, axis=0: np.take(np.asarray(x), range(index * per,
                                                      (index + 1) * per),
                                 axis=axis)
  feats = fb.features
  return clrs.Feedback(
      features=clrs.Features(
          inputs=jax.tree_util.tree_map(sl, feats.inputs),
          hints=jax.tree_util.tree_map(lambda x: sl(x, 1), feats.hints),
          lengths=sl(feats.lengths)),
      outputs=jax.tree_util.tree_map(sl, fb.outputs))


def train(mesh, batches, spec):
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
  flat_grads = np.concatenate([np.ravel(g) for g in
                               jax.tree_util.tree_leaves(grads)])
  return {
      'losses': losses,
      'grads': flat_grads.tolist(),
      'param_devices': len(leaf.sharding.device_set),
      'pred_shape': list(np.shape(preds['pi'].data)),
      'pred_pi': np.asarray(preds['pi'].data).tolist(),
  }


full, spec = global_batches()
if mode == 'devices':
  out = {'num_devices': jax.device_count(),
         'sharded': train(parallel.make_mesh(), full, spec),
         'single': train(parallel.make_mesh(jax.devices()[:1]), full, spec)}
else:
  mine = [local_slice(fb, jax.process_index(), jax.process_count())
          for fb in full]
  out = {'process_index': jax.process_index(),
         'process_count': jax.process_count(),
         'num_devices': jax.device_count(),
         'run': train(parallel.make_mesh(), mine, spec)}
print(json.dumps(out))
