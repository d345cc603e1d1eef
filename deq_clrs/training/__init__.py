"""Experiments library: data protocol, model wiring, training loop.

* :func:`train_and_evaluate`: train one model on one algorithm, resumably.
* :func:`evaluate_checkpoint`: score a saved checkpoint on chosen sizes.
* :func:`check_config`: refuse impossible configs with a reason.
"""

from deq_clrs.training.models import MODELS
from deq_clrs.training.models import check_config
from deq_clrs.training.train import evaluate_checkpoint
from deq_clrs.training.train import quiet_orbax_logs
from deq_clrs.training.train import train_and_evaluate

__all__ = ['MODELS', 'check_config', 'evaluate_checkpoint', 'quiet_orbax_logs',
           'train_and_evaluate']
