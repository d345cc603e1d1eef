"""Quiet C++ logs: importing this module sets TensorFlow's and XLA's log level.

``TF_CPP_MIN_LOG_LEVEL=3`` (unless already set) keeps the C++ logs of
TensorFlow and of JAX's XLA to fatal messages, such as the error-level
"failed call to cuInit" that JAX's backend start-up prints on a machine
without a GPU when jaxlib was loaded before the variable was set. It must
therefore be set before jax (or anything that imports it) is imported: the
entry points that import CLRS late (``experiments.train``,
``experiments.evaluate``) import this module first; :mod:`experiments.quiet`
imports it too. It imports nothing heavy. ``DEQ_CLRS_VERBOSE_START=1``
turns it off.
"""

import logging
import os


def set_log_levels() -> None:
  """Sets ``TF_CPP_MIN_LOG_LEVEL`` and JAX's back-end logger's level."""
  if os.environ.get('DEQ_CLRS_VERBOSE_START'):
    return
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')
  # JAX's "Unable to initialize backend 'tpu'" is an INFO line.
  logging.getLogger('jax._src.xla_bridge').setLevel(logging.WARNING)


set_log_levels()
