"""A stand-in for torch_sparse, which has no wheel for the CPU build of
torch 2.13: only the name ``SparseTensor``, which raises if constructed.

The authors' DEAR code imports ``SparseTensor`` and builds one only to
encode EDGE-located pointer inputs (bellman_ford has none); an algorithm
whose spec has such an input stops here with this module's error. No
``SparseStorage`` is exported, on purpose: torch_geometric 2.5 then sets
``WITH_TORCH_SPARSE = False`` and takes its own pure-torch paths.
"""

__version__ = '0.6.18+stub'


class SparseTensor:
  """Not available: raises on construction."""

  def __init__(self, *args, **kwargs):
    raise NotImplementedError(
        'torch_sparse stand-in (experiments/reference/stubs): SparseTensor '
        'is not available; this algorithm has an EDGE-located pointer '
        'input, which the stand-ins cannot run')
