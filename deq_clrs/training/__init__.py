"""Experiments library: data protocol, model wiring, training loop.

* :func:`train_and_evaluate`: train one model on one algorithm, resumably.
* :func:`evaluate_checkpoint`: score a saved checkpoint on chosen sizes.
* :func:`check_config`: refuse impossible configs with a reason.
* :class:`UserError`: a bad setting, workdir or file (the entry points
  report it in one line, without a traceback).
"""

from deq_clrs.training.errors import UserError
from deq_clrs.training.models import MODELS
from deq_clrs.training.models import check_config
from deq_clrs.training.train import evaluate_checkpoint
from deq_clrs.training.train import quiet_orbax_logs
from deq_clrs.training.train import train_and_evaluate

__all__ = ['MODELS', 'UserError', 'check_config', 'evaluate_checkpoint',
           'quiet_orbax_logs', 'train_and_evaluate']
