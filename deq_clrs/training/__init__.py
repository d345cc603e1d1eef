"""Experiments library: data protocol, model wiring, training loop.

* :func:`train_and_evaluate`: train one model on one algorithm, resumably.
* :func:`evaluate_checkpoint`: score a saved checkpoint on chosen sizes.
* :func:`check_config`: refuse impossible configs with a reason
  (:mod:`~deq_clrs.training.preflight` has all of it but the devices'
  check, without CLRS, and the workdir's check).
* :class:`UserError`: a bad setting, workdir or file (the entry points
  report it in one line, without a traceback); :class:`DivergedError`, one
  kind of it: training stopped at a non-finite loss or parameters;
  :class:`NonFiniteLossError`, another: a NaN or inf validation or test
  loss.

The names are imported on first use, so that the light modules of this
package (``errors``, ``preflight``, ``run_config``) load without CLRS.
"""

import importlib
from typing import Any

# Name -> the module that defines it.
_NAMES = {
    'DivergedError': 'errors',
    'MODELS': 'preflight',
    'NonFiniteLossError': 'errors',
    'UserError': 'errors',
    'check_config': 'models',
    'evaluate_checkpoint': 'saved_runs',
    'quiet_orbax_logs': 'progress',
    'train_and_evaluate': 'loop',
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
  if name in _NAMES:
    module = importlib.import_module(f'deq_clrs.training.{_NAMES[name]}')
    return getattr(module, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__() -> list[str]:
  return sorted(set(globals()) | set(_NAMES))
