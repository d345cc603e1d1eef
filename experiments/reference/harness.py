"""Runs the authors' ``train_reasoner.py``, unmodified, under a harness.

``run.sh`` starts it in the DEAR checkout (their paths are relative to it)
with the environment of setup.sh's ``env.sh``; the arguments are theirs
(``--algorithms ALGO --config-path configs/deq.yaml --seed S
--model-name NAME``). Their script runs as ``__main__`` after
``pytorch_lightning.Trainer`` is replaced by a subclass that only:

* adds ``max_steps=$MAX_STEPS`` (their script sets ``max_epochs`` from the
  yaml only);
* makes Lightning 1.8 validate at that step even when it falls mid-epoch:
  setting ``trainer.should_stop`` at that batch runs the validation, and
  their ModelCheckpoint on ``val/loss/average_loss``, as at an epoch's end
  (Lightning would otherwise stop without validating);
* turns the progress bar off and prints a line every $PRINT_EVERY steps;
* records, without touching training: the metrics of each validation, the
  DEQ solver's iterations per test graph (``deq_info['nstep']``), the
  per-graph test accuracy of the discrete node outputs (pointers,
  categorical), the metrics ``trainer.test`` returns and the selected
  checkpoint;
* with SMOKE=1, limits validation and test to one batch (smoke tests).

Their model, losses, data, optimiser and checkpoint selection are theirs.
At the end the record goes to $RESULT_JSON as JSON, which ``record.py``
turns into the project's parity record.
"""

import json
import os
import resource
import runpy
import sys
import time

import pytorch_lightning as pl
import torch

torch.set_num_threads(1)

MAX_STEPS = int(os.environ.get('MAX_STEPS', '5000'))
PRINT_EVERY = int(os.environ.get('PRINT_EVERY', '50'))
SMOKE = os.environ.get('SMOKE', '0') == '1'
RESULT_JSON = os.environ.get('RESULT_JSON')
T0 = time.time()
REC = {'val_history': [], 'tests': [], 'fit_end': None}


def _scalar(value):
  try:
    return float(value)
  except Exception:
    return None


def _kept(key):
  """Whether a validation metric is recorded: the average losses and the
  accuracies (solver iterations included), not the true step counts."""
  if not key.startswith(('val/', 'periodic_test/')):
    return False
  if '# steps real' in key:
    return False
  return 'loss/average_loss' in key or '/acc/' in key


def _correct(kind, pred, truth):
  """Per-node correctness of a NODE output of type ``kind``, or None for a
  type scored otherwise (masks, scalars)."""
  from clrs import Type
  if kind in (Type.POINTER, Type.PERMUTATION_POINTER,
              Type.SHOULD_BE_PERMUTATION):
    return (pred.reshape(truth.shape) == truth).float()
  if kind == Type.CATEGORICAL:
    return (pred.argmax(-1) == truth.argmax(-1)).float()
  return None


def _graph_accuracies(reasoner, batch):
  """Per-graph accuracy of each discrete node output of one test batch, as
  ``({name: [num_graphs]}, nodes per graph)``; their model's last outputs
  are only read."""
  from clrs import Location
  module = reasoner.algorithm_module
  spec = reasoner.dataset.spec
  outputs = type(module).convert_logits_to_outputs(
      spec, module.last_logits, batch.edge_index[0], batch.edge_index[1],
      batch.num_nodes, batch.batch, include_probabilities=False)['output']
  nodes = torch.bincount(batch.batch, minlength=batch.num_graphs).float()
  per_output = {}
  for name, pred in outputs.items():
    _, location, kind = spec[name]
    if location != Location.NODE:
      continue
    correct = _correct(kind, pred, getattr(batch, name))
    if correct is not None:
      per_graph = torch.zeros(batch.num_graphs).index_add_(
          0, batch.batch, correct)
      per_output[name] = per_graph / nodes
  return per_output, nodes


class Harness(pl.callbacks.Callback):
  """The step cap's validation, the progress lines and the recording."""

  def __init__(self):
    self.t_last = None
    self.step_last = 0
    self.cur_test = None

  def on_train_batch_end(self, trainer, pl_module, outputs, batch,
                         batch_idx):
    step = trainer.global_step
    if step >= MAX_STEPS and not trainer.should_stop:
      trainer.should_stop = True
      print(f'[harness] reached max_steps={MAX_STEPS} at epoch '
            f'{trainer.current_epoch} batch {batch_idx}: validating and '
            'stopping', flush=True)
    if step % PRINT_EVERY == 0 or step == 1:
      self._progress(trainer, outputs, step)

  def _progress(self, trainer, outputs, step):
    now = time.time()
    rate = ''
    if self.t_last is not None and step > self.step_last:
      rate = f' {(now - self.t_last) / (step - self.step_last):.3f} s/step'
    self.t_last, self.step_last = now, step
    loss = float('nan')
    if isinstance(outputs, dict) and 'loss' in outputs:
      loss = outputs['loss'].item()
    print(f'[harness] step {step} epoch {trainer.current_epoch} loss '
          f'{loss:.4f}{rate} wall {now - T0:.0f}s cpu '
          f'{time.process_time():.0f}s', flush=True)

  def on_train_epoch_start(self, trainer, pl_module):
    self.t_last, self.step_last = time.time(), trainer.global_step

  def on_validation_end(self, trainer, pl_module):
    if trainer.sanity_checking:
      return
    metrics = trainer.callback_metrics
    entry = {'global_step': trainer.global_step,
             'epoch': trainer.current_epoch, 'wall_s': time.time() - T0}
    entry.update({k: _scalar(metrics[k]) for k in metrics if _kept(k)})
    REC['val_history'].append(entry)
    print('[harness] validation:', json.dumps(entry), flush=True)

  def on_test_epoch_start(self, trainer, pl_module):
    self.cur_test = {'nstep': [], 'graph_acc': [], 'graph_nodes': []}

  def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                        dataloader_idx=0):
    for name, reasoner in pl_module.algorithms.items():
      info = getattr(reasoner.algorithm_module, 'deq_info', None)
      if info is not None and 'nstep' in info:
        self.cur_test['nstep'] += [
            float(x) for x in info['nstep'].flatten().tolist()]
      try:  # recording only
        per_output, nodes = _graph_accuracies(reasoner, batch[name])
      except Exception as e:
        self.cur_test['err'] = repr(e)
        continue
      if per_output:
        mean = torch.stack(list(per_output.values())).mean(0)
        self.cur_test['graph_acc'] += mean.tolist()
        self.cur_test['graph_nodes'] += nodes.tolist()
        self.cur_test['graph_acc_outputs'] = sorted(per_output)

  def on_test_end(self, trainer, pl_module):
    REC['tests'].append(self.cur_test)


def _shown(value):
  if isinstance(value, (int, float, str, bool, type(None))):
    return value
  return type(value).__name__


class CappedTrainer(pl.Trainer):
  """Their Trainer with the step cap, no progress bar and the harness."""

  def __init__(self, *args, **kwargs):
    kwargs['max_steps'] = MAX_STEPS
    kwargs['enable_progress_bar'] = False
    kwargs['callbacks'] = list(kwargs.get('callbacks') or []) + [Harness()]
    if SMOKE:
      kwargs['limit_val_batches'] = 1
      kwargs['limit_test_batches'] = 1
    print('[harness] pl.Trainer kwargs:',
          {k: _shown(v) for k, v in kwargs.items()}, flush=True)
    super().__init__(*args, **kwargs)
    REC['trainer'] = self

  def fit(self, *args, **kwargs):
    result = super().fit(*args, **kwargs)
    REC['fit_end'] = {'global_step': self.global_step,
                      'epoch': self.current_epoch,
                      'wall_s': time.time() - T0,
                      'cpu_s': time.process_time()}
    return result

  def test(self, *args, **kwargs):
    result = super().test(*args, **kwargs)
    REC['tests'][-1]['returned'] = result
    REC['tests'][-1]['ckpt_path'] = kwargs.get('ckpt_path')
    REC['tests'][-1]['wall_s'] = time.time() - T0
    return result


def _mean(values):
  return sum(values) / len(values) if values else None


def _final_test(final):
  """The final test's fields of the record."""
  nstep = final.get('nstep', [])
  accuracy = final.get('graph_acc', [])
  nodes = final.get('graph_nodes', [])
  micro = None
  if accuracy:
    micro = sum(a * n for a, n in zip(accuracy, nodes)) / sum(nodes or [1])
  return {
      'final_test_metrics': final.get('returned'),
      'final_test_nstep_per_graph': nstep,
      'final_test_nstep_mean': _mean(nstep),
      'final_test_nstep_max': max(nstep) if nstep else None,
      'final_test_graph_acc': accuracy,
      'final_test_graph_acc_outputs': final.get('graph_acc_outputs'),
      'final_test_acc_mean_of_graphs': _mean(accuracy),
      'final_test_acc_node_micro': micro,
  }


def _record(argv):
  """The raw record of the run (the format ``record.py`` reads)."""
  trainer = REC.pop('trainer')
  selection = trainer.checkpoint_callback
  best = selection.best_model_path
  checkpoint = {}
  if best:
    checkpoint = torch.load(best, map_location='cpu', weights_only=False)
  tests = REC['tests']
  own = resource.getrusage(resource.RUSAGE_SELF)
  children = resource.getrusage(resource.RUSAGE_CHILDREN)
  record = {
      'argv': argv,
      'max_steps': MAX_STEPS,
      'steps_trained': (REC['fit_end'] or {}).get('global_step'),
      'best_checkpoint': best,
      'best_val_loss': _scalar(selection.best_model_score),
      'best_checkpoint_epoch': checkpoint.get('epoch'),
      'best_checkpoint_global_step': checkpoint.get('global_step'),
      'initial_test_metrics': (tests[0].get('returned')
                               if len(tests) > 1 else None),
  }
  record.update(_final_test(tests[-1] if tests else {}))
  record.update({
      'val_history': REC['val_history'],
      'fit_end': REC['fit_end'],
      'wall_s_total': time.time() - T0,
      'cpu_s_self': own.ru_utime + own.ru_stime,
      'cpu_s_children_reaped': children.ru_utime + children.ru_stime,
  })
  return record


def main(argv):
  pl.Trainer = CappedTrainer
  # As `python train_reasoner.py` would: their folder first on the path,
  # not this one.
  here = os.path.dirname(os.path.realpath(__file__))
  if sys.path and os.path.realpath(sys.path[0] or '.') == here:
    sys.path[0] = os.getcwd()
  sys.argv = ['train_reasoner.py'] + argv
  runpy.run_path('train_reasoner.py', run_name='__main__')
  record = _record(argv)
  if RESULT_JSON:
    with open(RESULT_JSON, 'w') as f:
      json.dump(record, f, indent=1, default=str)
  long = ('final_test_nstep_per_graph', 'final_test_graph_acc',
          'val_history')
  summary = {k: v for k, v in record.items() if k not in long}
  print('[harness] done:', json.dumps(summary, default=str), flush=True)


if __name__ == '__main__':
  main(sys.argv[1:])
