"""What a run is checked for before CLRS is imported (light: no clrs, haiku
or TensorFlow, so that a bad flag is refused in a second or two, not after
CLRS's import).

* :func:`check_config`: the config's names, values and processor options;
  all of :func:`deq_clrs.training.models.check_config` but the devices,
  which need JAX's backend (and so, on several hosts, its distributed
  start-up first).
* :func:`prepare_workdir`: the workdir can be created and written to.
* The model and processor names (:data:`MODELS`, ...), which
  :mod:`~deq_clrs.training.models` re-exports.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import ml_collections

from deq_clrs import options as options_lib
from deq_clrs.training import variants
from deq_clrs.training.errors import UserError

# The names of the CLRS-30 algorithms (``clrs.CLRS_30_ALGS_SETTINGS``, read
# here without importing CLRS; a test checks that they are the same).
CLRS_30_ALGORITHMS = (
    'activity_selector', 'articulation_points', 'bellman_ford', 'bfs',
    'binary_search', 'bridges', 'bubble_sort', 'dag_shortest_paths', 'dfs',
    'dijkstra', 'find_maximum_subarray_kadane', 'floyd_warshall',
    'graham_scan', 'heapsort', 'insertion_sort', 'jarvis_march',
    'kmp_matcher', 'lcs_length', 'matrix_chain_order', 'minimum',
    'mst_kruskal', 'mst_prim', 'naive_string_matcher', 'optimal_bst',
    'quickselect', 'quicksort', 'segments_intersect',
    'strongly_connected_components', 'task_scheduling', 'topological_sort')
MODELS = variants.MODELS
EQUILIBRIUM_PROCESSORS = ('deq_mpnn', 'deq_triplet_mpnn')
CELL_PROCESSORS = ('mpnn', 'triplet_mpnn')
# Model selection on the validation set: lowest task loss (the paper's) or
# highest CLRS score.
SELECT_BY = ('loss', 'score')
CLRS_PREFIX = 'clrs:'
CLRS_PROCESSORS = ('deepsets', 'gat', 'gat_full', 'gatv2', 'gatv2_full',
                   'memnet_full', 'memnet_masked', 'mpnn', 'pgn', 'pgn_mask',
                   'triplet_mpnn', 'triplet_pgn', 'triplet_pgn_mask', 'gpgn',
                   'gpgn_mask', 'gmpnn', 'triplet_gpgn', 'triplet_gpgn_mask',
                   'triplet_gmpnn')
# The teacher's processor for each equilibrium processor: the same cell.
TEACHER_PROCESSOR = {'deq_mpnn': 'mpnn', 'deq_triplet_mpnn': 'triplet_mpnn'}


def processor_name(config: ml_collections.ConfigDict) -> str:
  """The processor of a config, with ``''`` resolved per model."""
  return config.processor or variants.of(config).default_processor


def uses_hints(config: ml_collections.ConfigDict) -> bool:
  """Whether the config's model encodes CLRS's hints."""
  return variants.of(config).encodes_hints


def is_equilibrium(config: ml_collections.ConfigDict) -> bool:
  """Whether the config's model solves for an equilibrium (DEAR)."""
  return variants.of(config).equilibrium


def cell_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """Cell options for :func:`integration.get_processor_factory`."""
  options = dict(config.cell)
  options['mid_size'] = options['mid_size'] or None  # 0 = hidden size.
  return options


def processor_options(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The options of a config's own processor (not ``clrs:<kind>``): the cell
  options, and the equilibrium options of an equilibrium model."""
  if is_equilibrium(config):
    return {**cell_options(config), **dict(config.deq)}
  return cell_options(config)


def check_processor(config: ml_collections.ConfigDict) -> str:
  """The config's processor name, checked with its options.

  Raises:
    ValueError: an unknown processor, one that does not fit the model, or
      an invalid option value.
  """
  name = processor_name(config)
  equilibrium = is_equilibrium(config)
  if equilibrium and name not in EQUILIBRIUM_PROCESSORS:
    raise ValueError(
        f'--model={config.model} needs an equilibrium processor '
        f'{list(EQUILIBRIUM_PROCESSORS)}, got --processor={name!r}')
  if not equilibrium and name in EQUILIBRIUM_PROCESSORS:
    raise ValueError(
        f'--processor={name!r} solves for an equilibrium and is only valid '
        f'with --model=dear; --model={config.model} runs a processor for the '
        f'true number of steps: use one of {list(CELL_PROCESSORS)} or '
        f'clrs:<kind>')
  if name in EQUILIBRIUM_PROCESSORS + CELL_PROCESSORS:
    options_lib.processor_configs(name, **processor_options(config))
  elif name.startswith(CLRS_PREFIX):
    kind = name[len(CLRS_PREFIX):]
    if kind not in CLRS_PROCESSORS:
      raise ValueError(f'unknown CLRS processor {kind!r}; expected one of '
                       f'{list(CLRS_PROCESSORS)}')
  else:
    raise ValueError(
        f'unknown processor {name!r}; expected one of '
        f'{list(EQUILIBRIUM_PROCESSORS + CELL_PROCESSORS)} or clrs:<kind>')
  return name


def _check_names(config: ml_collections.ConfigDict) -> None:
  """The algorithm, model and selection criterion are known ones."""
  if config.algorithm not in CLRS_30_ALGORITHMS:
    raise ValueError(f'unknown algorithm {config.algorithm!r}; valid CLRS-30 '
                     f'algorithms: {", ".join(CLRS_30_ALGORITHMS)}')
  variants.of(config)  # An unknown model is refused there.
  if config.select_by not in SELECT_BY:
    raise ValueError(f'select_by must be one of {list(SELECT_BY)}, got '
                     f'{config.select_by!r}')


# Algorithms whose reference evaluation sets ``eval_sets='reference'`` can
# redraw (see deq_clrs.training.reference_data).
REFERENCE_EVAL_ALGORITHMS = ('bellman_ford', 'bfs', 'dag_shortest_paths',
                             'dfs', 'floyd_warshall', 'insertion_sort',
                             'mst_prim')
EVAL_SETS = ('own', 'reference')


def check_eval_sets(config: ml_collections.ConfigDict) -> None:
  """``eval_sets`` is known and, if ``'reference'``, fits the algorithm."""
  if config.eval_sets not in EVAL_SETS:
    raise ValueError(f'eval_sets must be one of {list(EVAL_SETS)}, got '
                     f'{config.eval_sets!r}')
  if (config.eval_sets == 'reference'
      and config.algorithm not in REFERENCE_EVAL_ALGORITHMS):
    raise ValueError(
        f'eval_sets=reference: no reference recipe for '
        f'{config.algorithm!r} (the authors use their own sampler or a '
        f'pred_as_input form for it); available for: '
        f'{", ".join(REFERENCE_EVAL_ALGORITHMS)}')


POINTER_LOSSES = ('all_nodes', 'edges')


def check_pointer_loss(config: ml_collections.ConfigDict) -> None:
  """``pointer_loss`` is known; ``'edges'`` comes with masked pointers (a
  loss that never sees non-edges leaves their logits free, so predictions
  must be kept off them too)."""
  if config.pointer_loss not in POINTER_LOSSES:
    raise ValueError(f'pointer_loss must be one of {list(POINTER_LOSSES)}, '
                     f'got {config.pointer_loss!r}')
  if config.pointer_loss == 'edges' and not config.cell.mask_pointers:
    raise ValueError(
        "pointer_loss='edges' needs cell.mask_pointers=True: the loss over "
        'edges leaves the logits of non-edges untrained, so predictions '
        'must be masked to edges as well')


def _check_sizes(config: ml_collections.ConfigDict) -> None:
  """Graph sizes: at least one per list, none below 4 nodes."""
  for key in ('train_sizes', 'test_sizes'):
    sizes = list(config[key])
    if not sizes:
      raise ValueError(f'{key} must name at least one graph size')
    if min(sizes) < 4:
      raise ValueError(f'{key} must be >= 4 nodes, got {sizes}')
  if config.val_size < 4:
    raise ValueError(f'val_size must be >= 4 nodes, got {config.val_size}')


def _check_alignment(config: ml_collections.ConfigDict) -> None:
  """The alignment regulariser's settings fit the model."""
  weight = config.align.weight
  if not weight >= 0:
    raise ValueError(f'align.weight must be >= 0, got {weight}')
  if not weight:
    return
  if not is_equilibrium(config):
    raise ValueError(f'align.weight > 0 (the alignment regulariser) needs '
                     f'--model=dear, got --model={config.model}')
  if not config.align.teacher:
    raise ValueError('align.weight > 0 needs align.teacher: the workdir of '
                     'a trained --model=nar run of the same algorithm')
  if config.deq.backward != 'phantom':
    raise ValueError(f'align.weight > 0 needs backward=phantom (it samples '
                     f'the forward solve), got {config.deq.backward!r}')


def _check_values(config: ml_collections.ConfigDict) -> None:
  """Counts, seeds, steps and rates are in range."""
  positive = ('hidden_size', 'batch_size', 'train_samples_per_size',
              'val_samples', 'test_samples', 'eval_batch_size', 'log_every',
              'eval_every', 'checkpoint_every', 'keep_checkpoints', 'val_size')
  for key in positive:
    if config[key] < 1:
      raise ValueError(f'{key} must be >= 1, got {config[key]}')
  if not 0 <= config.seed < 2**32:
    # JAX keys (64-bit integers off) keep a seed's low 32 bits: seed
    # 2**32 + 5 would silently repeat seed 5's run.
    raise ValueError(f'seed must be in [0, 2**32), got {config.seed}')
  if config.data_seed < 0:
    raise ValueError(f'data_seed must be >= 0, got {config.data_seed}')
  if config.prefetch_batches < 0:
    raise ValueError(f'prefetch_batches must be >= 0 (0 = no background '
                     f'thread), got {config.prefetch_batches}')
  if config.train_steps < 1:
    raise ValueError(
        f'train_steps must be >= 1, got {config.train_steps} (a run of no '
        f'steps would report an untrained model; to score a saved '
        f'checkpoint use python -m experiments.evaluate)')
  if not config.learning_rate > 0:
    raise ValueError(
        f'learning_rate must be > 0, got {config.learning_rate}')
  if (variants.of(config).learned_termination
      and not config.nar_lt.cap_per_node > 0):
    raise ValueError(f'nar_lt.cap_per_node must be > 0, got '
                     f'{config.nar_lt.cap_per_node}')
  if config.grad_clip < 0:
    raise ValueError(f'grad_clip must be >= 0, got {config.grad_clip}')


def check_config(config: ml_collections.ConfigDict) -> None:
  """Refuses configs that cannot run, with a message that says why; all
  checks but the devices'
  (:func:`deq_clrs.training.models.check_config` adds those).

  Raises:
    ValueError: naming the offending setting and what is valid.
  """
  _check_names(config)
  _check_values(config)
  _check_sizes(config)
  check_eval_sets(config)
  check_pointer_loss(config)
  _check_alignment(config)
  check_processor(config)


def prepare_workdir(workdir: str) -> None:
  """Creates the workdir and checks that files can be written into it.

  Raises:
    UserError: it cannot be created or written to.
  """
  try:
    os.makedirs(workdir, exist_ok=True)
    with tempfile.TemporaryFile(dir=workdir):
      pass
  except OSError as error:
    raise UserError(
        f'cannot write to --workdir={workdir} ({error.strerror or error}); '
        f'choose a directory you can create and write to') from error
