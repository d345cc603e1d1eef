"""Default config: DEAR on one CLRS algorithm, sized for a CPU.

The data protocol, the model and the solver are the paper's (the authors'
DEAR code on torchdeq): training graphs of 8..16 nodes, Erdos-Renyi edge
probabilities 0.1..0.9, validation on 100 graphs of 16 nodes, test on 100
graphs of 64, model selection by the lowest validation loss, Adam with grad
clip 1. The cell and solver defaults are read from the library's dataclasses
(``deq_clrs.options.option_defaults``, which imports no CLRS or TensorFlow),
so they are written once. What
is smaller than the paper, so that the default run takes minutes on one CPU
core: latent 64 (paper 128), learning rate 1e-3 (paper 3e-4) and 300 steps
(paper: 100 epochs). ``dear_paper.py`` is the paper's protocol exactly.
"""

import ml_collections

from deq_clrs import options


def cell_config() -> ml_collections.ConfigDict:
  """The cell options with the library's defaults (``mid_size`` 0 = hidden)."""
  cell, _ = options.option_defaults()
  cell['mid_size'] = cell['mid_size'] or 0
  return ml_collections.ConfigDict(cell)


def deq_config() -> ml_collections.ConfigDict:
  """The equilibrium options (model 'dear' only) with the library's defaults."""
  _, deq = options.option_defaults()
  return ml_collections.ConfigDict(deq)


def _set_run(config: ml_collections.ConfigDict) -> None:
  """What runs: the algorithm, the model and its size, the optimiser."""
  config.algorithm = 'bfs'
  # 'dear' | 'nar' (true steps, no hints) | 'nar_lt' (learned termination)
  # | 'nar_hints' (classic CLRS with hints).
  config.model = 'dear'
  config.processor = ''          # '' = deq_mpnn for dear, mpnn for nar*
  config.seed = 0
  # Data parallel: 0 = every device of the job (all hosts); n = the first n.
  config.num_devices = 0
  config.tag = ''                # free-form variant label for the report

  config.hidden_size = 64
  config.batch_size = 32
  config.learning_rate = 1e-3
  config.grad_clip = 1.0
  config.train_steps = 300


def _set_data(config: ml_collections.ConfigDict) -> None:
  """The data protocol and the caches."""
  # Data protocol (DEAR's): train 8..16 nodes, validate 16, test 64. Each
  # batch has one size, drawn uniformly per batch (CLRS batches are dense;
  # see docs/fidelity.md). About 10^4 training graphs in all, as in the authors'
  # dataset configs.
  config.train_sizes = tuple(range(8, 17))
  config.train_samples_per_size = 1112
  config.er_probs = tuple(round(0.1 * i, 1) for i in range(1, 10))
  config.val_size = 16
  config.val_samples = 100
  config.test_sizes = (64,)
  config.test_samples = 100
  config.eval_batch_size = 50
  config.data_seed = 0
  # Randomised `pos` inputs (sorted uniform draws instead of evenly spaced
  # positions) in every dataset the run generates, as CLRS's run.py (train
  # and validation) and the authors' DEAR code (every split) do.
  config.random_pos = False
  # The cross-entropy of output node pointers: over all N nodes
  # ('all_nodes', CLRS's loss) or over each node's neighbours and itself
  # ('edges', the authors' DEAR decoder; needs cell.mask_pointers=True so
  # that predictions stay on edges too).
  config.pointer_loss = 'all_nodes'
  # Validation and test graphs: 'own' (seeded by data_seed) or 'reference'
  # (the authors' DEAR recipe, to score side by side with their code).
  config.eval_sets = 'own'
  config.data_dir = '~/.cache/deq_clrs/data'
  # JAX's persistent compilation cache: a rerun or resume with the same
  # shapes loads its compiled programs from here ('' = off).
  config.compilation_cache_dir = '~/.cache/deq_clrs/xla'


def _set_schedule(config: ml_collections.ConfigDict) -> None:
  """Model selection, and how often the run logs, validates and saves."""
  # Model selection: 'loss' (lowest validation task loss, the paper's) or
  # 'score' (highest validation CLRS score).
  config.select_by = 'loss'
  config.log_every = 25
  config.eval_every = 50
  # Also score the test sets every this many steps (a multiple of
  # eval_every) for learning curves; 0 = only at the end.
  config.test_every = 0
  config.checkpoint_every = 50
  config.keep_checkpoints = 2
  config.tensorboard = True
  # Training batches made and placed on the devices this many steps ahead,
  # on a background thread (0 = made in the loop); never changes results.
  config.prefetch_batches = 2


def get_config() -> ml_collections.ConfigDict:
  """The default config (see the module's docstring); fields in the order
  of the sections: run, data, schedule, then the option groups."""
  config = ml_collections.ConfigDict()
  _set_run(config)
  _set_data(config)
  _set_schedule(config)
  config.cell = cell_config()
  config.deq = deq_config()
  # nar_lt: the test-time cap on processor steps is cap_per_node * N.
  config.nar_lt = ml_collections.ConfigDict(dict(cap_per_node=5.0))
  # dear: DEAR's alignment regulariser (off: weight 0). The paper's weight
  # is 0.01 (0.1 with the Cayley graph); the teacher is the workdir of a
  # trained nar run of the same algorithm, hidden size and cell.
  config.align = ml_collections.ConfigDict(dict(weight=0.0, teacher=''))
  return config
