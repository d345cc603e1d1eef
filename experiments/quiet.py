"""Quiet start-up: importing this module silences TensorFlow's noise.

CLRS imports TensorFlow, which on a machine without a GPU prints a dozen
lines on import (oneDNN notes, "Could not find cuda drivers", absl's
"All log messages before absl::InitializeLog()") and, later, an error-level
"failed call to cuInit". None of it concerns these programs, which compute
with JAX. The entry points import this module before anything else::

  # isort: split
  from experiments import quiet  # noqa: F401  (before TensorFlow)
  # isort: split

or, those that check their flags before they import CLRS
(``experiments.train``, ``experiments.evaluate``), in ``main``, right
before the first import that reaches CLRS; they import
:mod:`experiments.log_levels` first instead, which sets the log level
before jax loads.

It sets ``TF_CPP_MIN_LOG_LEVEL=3`` (unless already set;
:mod:`experiments.log_levels`), imports CLRS (and so TensorFlow) with the
process's stderr captured, and writes back every captured line except
TensorFlow's info and warning log lines; if the import fails, everything
captured is written back. ``DEQ_CLRS_VERBOSE_START=1``
turns all of this off.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator

from experiments import log_levels

# C++ log lines at INFO or WARNING level (``I0000 00:00:...`` / ``W1123
# 05:28:37...``) and absl's note that precedes them.
NOISE = re.compile(r'^([IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] |WARNING: All '
                   r'log messages before absl::InitializeLog\(\))')


def is_noise(line: str) -> bool:
  return NOISE.match(line) is not None


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
  """Captures file descriptor 2 (C++ writes there too) and writes back the
  lines that are not :func:`is_noise` (all of them after an exception)."""
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile(mode='w+b') as capture:
    os.dup2(capture.fileno(), 2)
    failed = True
    try:
      yield
      failed = False
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      capture.seek(0)
      text = capture.read().decode(errors='replace')
      kept = [line for line in text.splitlines(keepends=True)
              if failed or not is_noise(line)]
      sys.stderr.write(''.join(kept))
      sys.stderr.flush()


def quiet_start_up() -> None:
  """Sets TensorFlow's log level and imports CLRS with its noise hidden."""
  if os.environ.get('DEQ_CLRS_VERBOSE_START'):
    return
  log_levels.set_log_levels()
  if 'clrs' in sys.modules:
    return
  with filtered_stderr():
    import clrs  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import


quiet_start_up()
