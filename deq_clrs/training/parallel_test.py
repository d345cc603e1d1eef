"""Data-parallel training: 4 forced CPU devices, and 2 processes on loopback."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
WORKER = ROOT / 'tests' / 'helpers' / 'parallel_worker.py'


def run_worker(*args, tmp_path):
  """Starts the worker; its output goes to files (a full pipe could block a
  process that its peer is waiting for in a collective)."""
  env = dict(os.environ, PYTHONPATH=str(ROOT), TF_CPP_MIN_LOG_LEVEL='3')
  env.pop('XLA_FLAGS', None)
  name = '_'.join(map(str, args))
  out = open(tmp_path / f'{name}.out', 'w+')
  err = open(tmp_path / f'{name}.err', 'w+')
  proc = subprocess.Popen([sys.executable, str(WORKER), *map(str, args)],
                          stdout=out, stderr=err, text=True, env=env, cwd=ROOT)
  proc.files = (out, err)
  return proc


def result(proc, timeout=600):
  proc.wait(timeout=timeout)
  out, err = proc.files
  out.seek(0)
  err.seek(0)
  text, errors = out.read(), err.read()
  assert proc.returncode == 0, errors[:3000] + '\n...\n' + errors[-3000:]
  return json.loads(text.strip().splitlines()[-1])


# Stated tolerance: sharding changes only the order of float32 reductions.
RTOL = 1e-5


@pytest.mark.slow
def test_sharded_training_equals_single_device_on_4_devices(tmp_path):
  res = result(run_worker('devices', 4, tmp_path=tmp_path))
  assert res['num_devices'] == 4
  sharded, single = res['sharded'], res['single']
  assert sharded['param_devices'] == 4  # parameters live on all 4 devices
  assert single['param_devices'] == 1
  np.testing.assert_allclose(sharded['losses'], single['losses'], rtol=RTOL)
  np.testing.assert_allclose(sharded['grads'], single['grads'], rtol=1e-4,
                             atol=1e-6)
  assert sharded['pred_shape'] == single['pred_shape']
  np.testing.assert_array_equal(sharded['pred_pi'], single['pred_pi'])
  # 6 graphs on 4 devices: padded to 8 and cut back.
  assert np.shape(sharded['odd_pred_pi']) == (6, 12)
  np.testing.assert_array_equal(sharded['odd_pred_pi'], single['odd_pred_pi'])
  # The padding graphs carry no weight in the loss.
  np.testing.assert_allclose(sharded['odd_loss'], single['odd_loss'],
                             rtol=RTOL)


def free_port():
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.mark.slow
def test_two_processes_train_together_on_loopback(tmp_path):
  port = free_port()
  procs = [run_worker('process', port, i, 2, tmp_path=tmp_path)
           for i in range(2)]
  try:
    runs = [result(p) for p in procs]
  finally:
    for p in procs:
      p.kill()
  reference = result(run_worker('devices', 1, tmp_path=tmp_path))['single']
  for i, r in enumerate(runs):
    assert r['process_index'] == i
    assert r['process_count'] == 2
    assert r['num_devices'] == 2  # one CPU device per process, one job
    assert r['run']['param_devices'] == 2
    # Each process placed half of every batch on its device; together they
    # reproduce the single-process run.
    np.testing.assert_allclose(r['run']['losses'], reference['losses'],
                               rtol=RTOL)
    np.testing.assert_allclose(r['run']['grads'], reference['grads'],
                               rtol=1e-4, atol=1e-6)
    assert r['run']['pred_shape'] == reference['pred_shape']


def test_indivisible_batch_is_refused():
  from deq_clrs.training import parallel

  with pytest.raises(ValueError, match='batch size 6 must be divisible by '
                     'the 4 devices'):
    parallel.check_batch_divisible(6, 4)
  parallel.check_batch_divisible(8, 4)


def test_a_batch_is_padded_to_the_devices_and_cut_back():
  import clrs

  from deq_clrs.training import parallel

  sampler, _ = clrs.build_sampler('bfs', num_samples=-1, length=8, seed=0)
  fb = sampler.next(3)
  padded, weights, batch = parallel.pad_to_devices(fb, 4)
  assert batch == 3
  assert parallel.batch_size(padded) == 4
  np.testing.assert_array_equal(weights, [1, 1, 1, 0])
  assert weights.dtype == np.float32
  same, weights, batch = parallel.pad_to_devices(fb, 3)
  assert same is fb and batch == 3
  np.testing.assert_array_equal(weights, [1, 1, 1])
  # The real graphs come back along the batch axis of every array.
  batch_major = {'x': np.arange(8).reshape(4, 2)}
  np.testing.assert_array_equal(
      parallel.first_graphs(batch_major, 3, 0)['x'], batch_major['x'][:3])
  time_major = [np.arange(8).reshape(2, 4)]
  np.testing.assert_array_equal(parallel.first_graphs(time_major, 3, 1)[0],
                                time_major[0][:, :3])


def test_predict_pads_a_batch_the_devices_do_not_divide():
  import clrs
  import jax
  import numpy as np

  import deq_clrs
  from deq_clrs.training import network as network_lib
  from deq_clrs.training import parallel
  from deq_clrs.training import step as step_lib

  sampler, spec = clrs.build_sampler('bfs', num_samples=-1, length=8, seed=0)
  fb = deq_clrs.one_shot_feedback(sampler.next(3))
  features = parallel.pad_batch(fb.features, 2)
  assert features.lengths.shape == (5,)
  np.testing.assert_array_equal(features.inputs[0].data[3],
                                fb.features.inputs[0].data[2])
  padded = parallel.pad_batch(fb, 2)
  assert padded.outputs[0].data.shape[0] == 5
  net = network_lib.build_network(
      spec, fb, deq_clrs.get_processor_factory('deq_mpnn'), hidden_dim=8,
      encode_hints=False, decode_hints=False)
  stepper = step_lib.Stepper(spec=spec, net=net,
                             optimizer=step_lib.make_optimizer(1e-3, 1.0),
                             mesh=parallel.make_mesh(jax.devices()[:1]),
                             decode_hints=False)
  params = stepper.init_params(0, fb.features)
  preds, _ = stepper.predict(params, jax.random.PRNGKey(0), fb.features)
  assert preds['pi'].data.shape == fb.outputs[0].data.shape


def test_shard_passes_placed_arrays_through():
  import jax

  from deq_clrs.training import data as data_lib
  from deq_clrs.training import parallel

  mesh = parallel.make_mesh(jax.devices()[:1])
  feedback = data_lib.generate('bfs', 5, 2, seed=0)
  placed = parallel.shard(mesh, feedback)
  again = parallel.shard(mesh, placed)
  for a, b in zip(jax.tree_util.tree_leaves(placed),
                  jax.tree_util.tree_leaves(again)):
    assert a is b  # no copy through the host
  for a, b in zip(jax.tree_util.tree_leaves(feedback),
                  jax.tree_util.tree_leaves(placed)):
    # float64 host data placed as float32 (x64 is off).
    np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-7)
