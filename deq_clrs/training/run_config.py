"""What a run's saved ``config.json`` means when the configs have grown
since it was written (light: the report reads it without CLRS)."""

from __future__ import annotations

import json
from typing import Any

import ml_collections

# Settings added to the configs after runs were made without them, and their
# value in those runs (the setting switched off): a run without one resumes,
# is scored and is reported as if it had that value.
ADDED_SETTINGS: dict[str, Any] = {'align': {'weight': 0.0, 'teacher': ''},
                                  'compilation_cache_dir': '',
                                  'prefetch_batches': 2,
                                  'random_pos': False, 'eval_sets': 'own',
                                  'pointer_loss': 'all_nodes',
                                  'cell': {'complete_graph': False,
                                           'mask_pointers': False,
                                           'compute_dtype': 'float32'},
                                  'deq': {'return_best': False}}


def _fill(config: Any, added: dict[str, Any]) -> None:
  """Adds ``added``'s entries missing from ``config`` (a dict or
  ConfigDict), recursing into sections both have."""
  for key, value in added.items():
    if key not in config:
      config[key] = (ml_collections.ConfigDict(value)
                     if isinstance(value, dict)
                     and isinstance(config, ml_collections.ConfigDict)
                     else value)
    elif isinstance(value, dict):
      _fill(config[key], value)


def with_added_settings(config: ml_collections.ConfigDict
                        ) -> ml_collections.ConfigDict:
  """``config`` with every missing :data:`ADDED_SETTINGS` entry filled in,
  sections included (in place; returned for convenience)."""
  _fill(config, ADDED_SETTINGS)
  return config


def filled(saved: dict[str, Any]) -> dict[str, Any]:
  """A copy of a saved ``config.json``'s dict with every missing
  :data:`ADDED_SETTINGS` entry filled in."""
  out = json.loads(json.dumps(saved))
  _fill(out, ADDED_SETTINGS)
  return out
