"""Default config: DEAR on one CLRS algorithm, sized for a CPU.

DEAR's own protocol (GPU): hidden_size 128, batch_size 32, Adam 3e-4, grad
clip 1, sizes 8..16 for training, 16 for validation, 64 for testing. The
defaults below keep the data protocol, the solver and the regularisers, but
use a smaller latent, a larger learning rate and a few hundred steps so the
default run takes a few minutes on one CPU core.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.algorithm = 'bfs'
  config.model = 'dear'          # 'dear' | 'nar' | 'nar_hints'
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

  # Data protocol (DEAR's): train 8..16 nodes, validate 16, test 64.
  config.train_sizes = tuple(range(8, 17))
  config.train_samples_per_size = 256
  config.val_size = 16
  config.val_samples = 32
  config.test_sizes = (64,)
  config.test_samples = 32
  config.eval_batch_size = 32
  config.data_seed = 0
  config.data_dir = '~/.cache/deq_clrs/data'

  config.log_every = 25
  config.eval_every = 50
  config.checkpoint_every = 50
  config.keep_checkpoints = 2

  # The message-passing cell (DEAR's gated max-MPNN). mid_size 0 = hidden.
  config.cell = ml_collections.ConfigDict(dict(
      mid_size=0, aggregation='max', layer_norm=True, gated=True,
      gate_bias=-3.0, nb_triplet_fts=8))

  # Equilibrium solver and gradient (model 'dear' only); DEAR's values.
  config.deq = ml_collections.ConfigDict(dict(
      solver='anderson', max_iter=40, eval_max_iter=160, rel_tol=0.1,
      abs_tol=0.0, history_size=6, beta=1.0, ridge=1e-4,
      backward='phantom', linear_solver='gmres', linear_tol=1e-5,
      linear_max_iter=40, phantom_steps=1, phantom_damping=1.0,
      unroll_steps=40, noise_std=1e-3, jac_reg_weight=1e-4,
      jac_reg_samples=1))
  return config
