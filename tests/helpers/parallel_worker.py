"""Trains a tiny DEAR model data-parallel (``deq_clrs.training.step``) and
prints what the tests compare.

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
from deq_clrs.training import network as network_lib  # noqa: E402
from deq_clrs.training import step as step_lib  # noqa: E402

BATCH = 8
STEPS = 3


def global_batches():
  sampler, spec = clrs.build_sampler('bfs', num_samples=-1, length=12, seed=0)
  batches = [deq_clrs.one_shot_feedback(sampler.next(BATCH))
             for _ in range(STEPS)]
  odd = deq_clrs.one_shot_feedback(sampler.next(6))  # 4 devices: padded
  return batches, odd, spec


def train(mesh, batches, odd, spec):
  """Three steps of data-parallel training, then predictions."""
  net = network_lib.build_network(
      spec, batches[0], deq_clrs.get_processor_factory('deq_mpnn'),
      hidden_dim=16, encode_hints=False, decode_hints=False)
  stepper = step_lib.Stepper(spec=spec, net=net,
                             optimizer=step_lib.make_optimizer(1e-2, 0.0),
                             mesh=mesh, decode_hints=False)
  state = stepper.init(0, batches[0].features)
  key = jax.random.PRNGKey(0)
  _, grads = stepper.loss_and_grads(state.params, key, batches[0])
  losses = []
  for fb in batches:
    state = stepper.train_step(state, key, fb)
    losses.append(float(parallel.to_host(state.loss)))
  leaf = jax.tree_util.tree_leaves(state.params)[0]
  preds, _ = stepper.predict(state.params, key, batches[0].features)
  odd_preds, odd_loss = stepper.evaluate(state.params, key, odd)
  flat_grads = np.concatenate([np.ravel(g) for g in
                               jax.tree_util.tree_leaves(
                                   parallel.to_host(grads))])
  return {
      'losses': losses,
      'grads': flat_grads.tolist(),
      'param_devices': len(leaf.sharding.device_set),
      'pred_shape': list(np.shape(preds['pi'].data)),
      'pred_pi': np.asarray(preds['pi'].data).tolist(),
      'odd_pred_pi': np.asarray(odd_preds['pi'].data).tolist(),
      'odd_loss': float(parallel.to_host(odd_loss)),
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
