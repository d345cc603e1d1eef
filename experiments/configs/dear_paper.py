"""The paper's protocol exactly (Georgiev et al., NeurIPS 2024): a GPU/TPU run.

Latent 128, batch 32, Adam 3e-4, gradient clipping 1; 100 epochs over the
paper's 10^5 training graphs (sizes 8..16, Erdos-Renyi edge probabilities
0.1..0.9), i.e. 312,500 steps; validation on 100 graphs of 16 nodes once
per epoch, the checkpoint with the lowest validation task loss; test on 100
graphs of 64 nodes (``--test_sizes=64,128,256`` for the larger ones). The
solver, gradient, noise, regulariser and cell are the library's defaults,
which are the reference's. Three seeds: ``launch/sweeps/dear_paper.py``.
"""

from experiments.configs import default

TRAIN_GRAPHS = 100_000
EPOCHS = 100


def get_config():
  config = default.get_config()
  config.hidden_size = 128
  config.batch_size = 32
  config.learning_rate = 3e-4
  config.grad_clip = 1.0
  sizes = len(config.train_sizes)
  config.train_samples_per_size = -(-TRAIN_GRAPHS // sizes)
  steps_per_epoch = TRAIN_GRAPHS // config.batch_size
  config.train_steps = EPOCHS * steps_per_epoch
  config.eval_every = steps_per_epoch
  config.test_every = 10 * steps_per_epoch
  config.checkpoint_every = steps_per_epoch
  config.log_every = 500
  return config
