"""Exports the authors' stored evaluation sets of one algorithm to NumPy,
to cross-check the project's redraw of them
(``deq_clrs/training/reference_data.py``).

    cd $REF_ROOT/DEAR && ../venv/bin/python export_npz.py bellman_ford OUT

Each split (default: val and test) is loaded through their dataset class,
with their sizes and seeds (``datasets/_configs.py``; seed ``47 + 3 *
nodes``, ``+ 1`` for val, ``+ 2`` for test), and written to
``OUT/<algorithm>_<split><nodes>.npz``, stacked over graphs (every graph
of a set has the same size):

* node attributes as stored, ``[G, N, ...]`` (a node pointer is stored as
  ``<name>_index``);
* edge attributes dense, ``[G, N, N, ...]``: the stored value on each
  stored edge, 0 elsewhere (so bellman_ford's ``A`` is CLRS's input ``A``:
  their edges are CLRS's adjacency with self loops);
* ``adj_with_self_loops`` ``[G, N, N]``: 1 on the stored edges;
* graph attributes (``lengths``) ``[G, ...]``. Hints (``*_temporal``) are
  left out.
"""

import pathlib
import sys

import numpy as np
import torch
from datasets._configs import CONFIGS
from datasets.constants import _DATASET_SPECS
from hyperparameters import get_hyperparameters

# Their per-split seed offsets (any other split: 0), as prepare_datasets.py.
OFFSETS = {'val': 1, 'test': 2}


def _dataset(algorithm, split, nodes):
  """Their stored set (built first if it is not there yet)."""
  spec = _DATASET_SPECS[algorithm]
  seed = get_hyperparameters()['seed'] + 3 * nodes + OFFSETS.get(split, 0)
  return spec['dataclass'](
      spec['rootdir'], algorithm=algorithm, split=split, num_nodes=nodes,
      num_samples=CONFIGS[algorithm][split]['num_samples'], seed=seed)


def _dense(graph, value, nodes):
  """An edge attribute on ``[N, N, ...]``, 0 off the stored edges."""
  floating = torch.is_floating_point(value)
  dense = torch.zeros((nodes, nodes) + tuple(value.shape[1:]),
                      dtype=torch.float64 if floating else value.dtype)
  dense[graph.edge_index[0], graph.edge_index[1]] = (
      value.double() if floating else value)
  return dense.float() if floating else dense


def _arrays(graph):
  """One graph's arrays by name."""
  nodes = int(graph.num_nodes)
  adjacency = torch.zeros(nodes, nodes)
  adjacency[graph.edge_index[0], graph.edge_index[1]] = 1.0
  arrays = {'adj_with_self_loops': adjacency}
  for key in graph.keys():
    value = graph[key]
    if key == 'edge_index' or key.endswith('_temporal'):
      continue
    if not isinstance(value, torch.Tensor):
      continue
    if graph.is_edge_attr(key):
      value = _dense(graph, value, nodes)
    arrays[key] = value
  return {k: v.numpy() for k, v in arrays.items()}


def export(algorithm, split, out):
  nodes_per_graph = CONFIGS[algorithm][split]['num_nodes']
  if not isinstance(nodes_per_graph, int):
    nodes_per_graph = nodes_per_graph[0]
  dataset = _dataset(algorithm, split, nodes_per_graph)
  graphs = [_arrays(dataset[i]) for i in range(len(dataset))]
  stacked = {k: np.stack([g[k] for g in graphs]) for k in graphs[0]}
  path = out / f'{algorithm}_{split}{nodes_per_graph}.npz'
  np.savez(path, **stacked)
  print(f'== {path}: {len(graphs)} graphs of {nodes_per_graph} nodes')
  for key, value in sorted(stacked.items()):
    print(f'   {key}: {value.dtype} {list(value.shape)}; graph 0 sum '
          f'{float(value[0].astype(np.float64).sum())!r}, all '
          f'{float(value.astype(np.float64).sum())!r}')


def main(argv):
  if len(argv) < 2:
    raise SystemExit('usage: export_npz.py <algorithm> <out_dir> [split ...]')
  algorithm, out = argv[0], pathlib.Path(argv[1])
  out.mkdir(parents=True, exist_ok=True)
  for split in argv[2:] or ['val', 'test']:
    export(algorithm, split, out)


if __name__ == '__main__':
  main(sys.argv[1:])
