"""The paper's protocol at a CPU budget: results/ was made with it.

Everything of ``dear_paper.py`` (latent 128, batch 32, Adam 3e-4, gradient
clipping 1, sizes 8..16 with Erdos-Renyi edge probabilities 0.1..0.9,
validation 100 x 16 nodes with selection by the lowest validation loss,
test 100 x 64 nodes, the reference's solver, gradient, noise, regulariser
and cell) except:

* 5,000 training steps instead of 312,500 (160,000 graphs drawn);
* a training pool of about 10^4 graphs (the authors' own dataset configs)
  instead of 10^5, which keeps generation to minutes per algorithm;
* validation every 250 steps, and the test set scored every 1,000 steps for
  the learning curves.
"""

from experiments.configs import dear_paper


def get_config():
  config = dear_paper.get_config()
  config.train_samples_per_size = 1112
  config.train_steps = 5000
  config.eval_every = 250
  config.test_every = 1000
  config.checkpoint_every = 250
  config.log_every = 100
  return config
