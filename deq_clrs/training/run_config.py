"""What a run's saved ``config.json`` means when the configs have grown
since it was written (light: the report reads it without CLRS)."""

from __future__ import annotations

from typing import Any

import ml_collections

# Settings added to the configs after runs were made without them, and their
# value in those runs (the setting switched off): a run without one resumes,
# is scored and is reported as if it had that value.
ADDED_SETTINGS: dict[str, Any] = {'align': {'weight': 0.0, 'teacher': ''},
                                  'compilation_cache_dir': '',
                                  'random_pos': False, 'eval_sets': 'own'}


def with_added_settings(config: ml_collections.ConfigDict
                        ) -> ml_collections.ConfigDict:
  """``config`` with every missing :data:`ADDED_SETTINGS` entry filled in
  (in place; returned for convenience)."""
  for key, value in ADDED_SETTINGS.items():
    if key not in config:
      config[key] = (ml_collections.ConfigDict(value)
                     if isinstance(value, dict) else value)
  return config
