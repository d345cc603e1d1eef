"""A pure-PyTorch stand-in for torch_scatter, which has no wheel for the
CPU build of torch 2.13.

It holds only what the authors' DEAR code and torch_geometric 2.5 import:
``scatter`` (sum, add, mean, mul, min, max), ``scatter_sum``,
``scatter_add``, ``scatter_mean``, ``scatter_mul``, ``scatter_min``,
``scatter_max``, ``scatter_softmax``, ``scatter_log_softmax`` (the same
formulas as torch_scatter 2.1, ``eps`` included), ``segment_csr`` (1-D
``indptr`` only), ``segment_coo`` and ``broadcast``.

Semantics follow torch_scatter 2.1: an output position that receives
nothing is 0; ``scatter_min``/``scatter_max`` return ``(out, arg)`` where
``arg`` is ``src.size(dim)`` at such a position and ties go to the lowest
index (as its CPU kernel does). torch_geometric 2.5 finds this module
(``WITH_TORCH_SCATTER``) and uses it as it would the real one.
"""

from typing import Optional
from typing import Tuple

import torch

__version__ = '2.1.2+stub'


def broadcast(src: torch.Tensor, other: torch.Tensor,
              dim: int) -> torch.Tensor:
  """``src`` (an index) expanded to ``other``'s shape along ``dim``."""
  if dim < 0:
    dim = other.dim() + dim
  if src.dim() == 1:
    for _ in range(0, dim):
      src = src.unsqueeze(0)
  for _ in range(src.dim(), other.dim()):
    src = src.unsqueeze(-1)
  return src.expand(other.size())


def _prepare(src, index, dim, out, dim_size):
  """The broadcast index, the non-negative dim and the output (zeros of the
  size asked for, or of the largest index + 1, where ``out`` is None)."""
  if dim < 0:
    dim = src.dim() + dim
  index = broadcast(index, src, dim)
  if out is None:
    size = list(src.size())
    if dim_size is not None:
      size[dim] = dim_size
    elif index.numel() == 0:
      size[dim] = 0
    else:
      size[dim] = int(index.max()) + 1
    out = src.new_zeros(size)
  return index, dim, out


def scatter_sum(src, index, dim: int = -1,
                out: Optional[torch.Tensor] = None,
                dim_size: Optional[int] = None) -> torch.Tensor:
  index, dim, out = _prepare(src, index, dim, out, dim_size)
  return out.scatter_add_(dim, index, src)


scatter_add = scatter_sum


def scatter_mul(src, index, dim: int = -1, out=None, dim_size=None):
  index, dim, product = _prepare(src, index, dim, out, dim_size)
  if out is None:
    product = torch.ones_like(product)
  return product.scatter_reduce_(dim, index, src, reduce='prod',
                                 include_self=True)


def scatter_mean(src, index, dim: int = -1, out=None, dim_size=None):
  out = scatter_sum(src, index, dim, out, dim_size)
  dim_size = out.size(dim)
  index_dim = dim
  if index_dim < 0:
    index_dim = index_dim + src.dim()
  if index.dim() <= index_dim:
    index_dim = index.dim() - 1
  ones = torch.ones(index.size(), dtype=src.dtype, device=src.device)
  count = scatter_sum(ones, index, index_dim, None, dim_size)
  count[count < 1] = 1
  count = broadcast(count, out, dim)
  if out.is_floating_point():
    out.true_divide_(count)
  else:
    out.div_(count, rounding_mode='floor')
  return out


def _scatter_arg(src, index, dim, out, dim_size, reduce):
  """``(out, arg)`` of a min or max reduction: ``arg`` is the lowest index
  along ``dim`` reaching the extreme, ``src.size(dim)`` where none does."""
  index, dim, out = _prepare(src, index, dim, out, dim_size)
  out = out.scatter_reduce(dim, index, src, reduce=reduce,
                           include_self=False)
  n = src.size(dim)
  with torch.no_grad():
    hit = src == out.gather(dim, index)
    shape = [1] * src.dim()
    shape[dim] = n
    position = torch.arange(n, device=src.device).view(shape).expand_as(src)
    candidate = torch.where(hit, position, torch.full_like(position, n))
    arg = torch.full(out.size(), n, dtype=torch.long, device=src.device)
    arg = arg.scatter_reduce(dim, index, candidate, reduce='amin',
                             include_self=True)
  return out, arg


def scatter_max(src, index, dim: int = -1, out=None,
                dim_size=None) -> Tuple[torch.Tensor, torch.Tensor]:
  return _scatter_arg(src, index, dim, out, dim_size, 'amax')


def scatter_min(src, index, dim: int = -1, out=None,
                dim_size=None) -> Tuple[torch.Tensor, torch.Tensor]:
  return _scatter_arg(src, index, dim, out, dim_size, 'amin')


def scatter(src, index, dim: int = -1, out=None, dim_size=None,
            reduce: str = 'sum'):
  if reduce in ('sum', 'add'):
    return scatter_sum(src, index, dim, out, dim_size)
  if reduce == 'mul':
    return scatter_mul(src, index, dim, out, dim_size)
  if reduce == 'mean':
    return scatter_mean(src, index, dim, out, dim_size)
  if reduce == 'min':
    return scatter_min(src, index, dim, out, dim_size)[0]
  if reduce == 'max':
    return scatter_max(src, index, dim, out, dim_size)[0]
  raise ValueError(reduce)


def _recentred(src, index, dim, dim_size, name):
  """``src`` minus the maximum of its group, and the broadcast index."""
  if not torch.is_floating_point(src):
    raise ValueError(f'`{name}` can only be computed over tensors with '
                     'floating point data types.')
  index = broadcast(index, src, dim)
  group_max = scatter_max(src, index, dim=dim, dim_size=dim_size)[0]
  return src - group_max.gather(dim, index), index


def scatter_softmax(src, index, dim: int = -1,
                    dim_size: Optional[int] = None):
  scores, index = _recentred(src, index, dim, dim_size, 'scatter_softmax')
  exp = scores.exp_()
  total = scatter_sum(exp, index, dim, dim_size=dim_size)
  return exp.div(total.gather(dim, index))


def scatter_log_softmax(src, index, dim: int = -1, eps: float = 1e-12,
                        dim_size: Optional[int] = None):
  scores, index = _recentred(src, index, dim, dim_size,
                             'scatter_log_softmax')
  total = scatter_sum(scores.exp(), index, dim, dim_size=dim_size)
  return scores.sub_(total.add_(eps).log_().gather(dim, index))


def segment_csr(src, indptr, out=None, reduce: str = 'sum'):
  """The reduction of ``src``'s rows in the segments ``indptr`` bounds
  (1-D ``indptr`` only: segments along dim 0)."""
  assert indptr.dim() == 1, 'the stand-in supports 1-D indptr only'
  counts = indptr[1:] - indptr[:-1]
  index = torch.repeat_interleave(
      torch.arange(counts.numel(), device=src.device), counts)
  result = scatter(src.narrow(0, int(indptr[0]), index.numel()), index, 0,
                   dim_size=counts.numel(), reduce=reduce)
  if out is not None:
    out.copy_(result)
    return out
  return result


def segment_coo(src, index, out=None, dim_size=None, reduce: str = 'sum'):
  return scatter(src, index, index.dim() - 1, out, dim_size, reduce)
