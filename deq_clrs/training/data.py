"""Data protocol: cached CLRS datasets and a resumable training stream.

Every dataset is made by an offline CLRS sampler (``num_samples > 0``) with a
seed fixed by ``(data_seed, split, size)``, with should-be permutations
processed as in CLRS's ``run.py``, pickled once into a data
directory and reloaded by every later run, so every model and every rerun is
trained and scored on the same graphs:

* ``train``: one pool per training size (DEAR: 8..16 nodes);
* ``val``: validation graphs (DEAR: 16 nodes);
* ``test``: test graphs (DEAR: 64 nodes, optionally 128/256).

Graph algorithms draw Erdos-Renyi graphs whose edge probability is chosen per
graph from ``er_probs`` (the reference: 0.1, ..., 0.9; CLRS's own default is
one value per algorithm, e.g. 0.5 for BFS).

A training batch is a deterministic function of ``(seed, step)``: the size
and the pool indices are drawn from a NumPy generator seeded with both, so a
run resumed from a checkpoint sees exactly the batches it would have seen.

Models that neither encode nor decode hints (``dear``, ``nar``) only need the
number of steps from the hints: :func:`steps_only` keeps the smallest hint
(with its full time axis) and drops the rest, which keeps cached files small
(full Floyd-Warshall hints at 64 nodes take ~200 MB for 32 graphs).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging as pylogging
import os
import pickle
import tempfile
import zlib
from collections.abc import Callable
from collections.abc import Sequence

import clrs
import numpy as np
from absl import logging

from deq_clrs.training.errors import UserError

SPLIT_IDS = {'train': 1, 'val': 2, 'test': 3}


def valid_algorithms() -> list[str]:
  """Names of the CLRS-30 algorithms, sorted."""
  return sorted(clrs.CLRS_30_ALGS_SETTINGS)


def check_algorithms(names: Sequence[str]) -> None:
  """Refuses names that are not CLRS-30 algorithms.

  Raises:
    ValueError: naming the unknown ones and listing the valid names.
  """
  valid = valid_algorithms()
  unknown = [name for name in names if name not in valid]
  if unknown:
    what = (f'algorithm {unknown[0]!r}' if len(unknown) == 1
            else f'algorithms {unknown}')
    raise ValueError(f'unknown {what}; valid CLRS-30 algorithms: '
                     f'{", ".join(valid)}')


def algorithm_spec(algorithm: str) -> clrs.Spec:
  """The spec models are built with: CLRS's, with should-be permutations
  turned into permutation pointers plus a mask (as CLRS's ``run.py`` does
  with ``enforce_permutations``; sorting algorithms need it)."""
  spec, _ = clrs.process_permutations(clrs.SPECS[algorithm], iter(()), True)
  return spec


def enforce_permutations(feedback: clrs.Feedback) -> clrs.Feedback:
  """Applies CLRS's permutation processing to one ``Feedback``."""
  _, processed = clrs.process_permutations({}, iter([feedback]), True)
  feedback = next(processed)

  def numpy(traj):  # CLRS's conversion returns jax arrays.
    return tuple(clrs.DataPoint(dp.name, dp.location, dp.type_,
                                np.asarray(dp.data)) for dp in traj)
  f = feedback.features
  return clrs.Feedback(
      features=clrs.Features(inputs=numpy(f.inputs), hints=numpy(f.hints),
                             lengths=np.asarray(f.lengths)),
      outputs=numpy(feedback.outputs))


def sample_batches(algorithm: str, size: int, batch_size: int, count: int,
                   seed: int) -> list[clrs.Feedback]:
  """``count`` consecutive batches of one on-the-fly CLRS sampler.

  Permutations are enforced as for every model here (see
  :func:`algorithm_spec`). Consecutive batches may have different numbers
  of hint steps: CLRS pads to the longest trajectory it has seen so far.
  """
  sampler, _ = clrs.build_sampler(algorithm, num_samples=-1, length=size,
                                  seed=seed)
  return [enforce_permutations(sampler.next(batch_size))
          for _ in range(count)]


def dataset_seed(data_seed: int, split: str, size: int) -> int:
  """The sampler seed of one dataset: a hash of (data_seed, split, size)."""
  seq = np.random.SeedSequence([data_seed, SPLIT_IDS[split], size])
  return int(seq.generate_state(1)[0] & 0x7FFFFFFF)


# Datasets are generated in chunks of this many graphs (each chunk its own
# seeded sampler), so that large graphs' full hints never sit in memory for
# a whole dataset before :func:`steps_only` drops them.
GENERATION_CHUNK = 64


@functools.lru_cache(maxsize=None)
def takes_edge_probability(algorithm: str) -> bool:
  """Whether the algorithm's CLRS sampler draws graphs with a ``p`` argument
  (the Erdos-Renyi edge probabilities).

  Asked through the public API: ``build_sampler`` drops (with a warning)
  arguments its sampler does not take, so the same seed gives the same
  graphs for any ``p`` exactly when ``p`` is not used. (For each CLRS-30
  algorithm this agrees with the sampler's signature.)
  """
  def inputs(p: float) -> list[np.ndarray]:
    sampler, _ = clrs.build_sampler(algorithm, num_samples=-1, length=8,
                                    seed=0, p=(p,))
    return [np.asarray(dp.data) for dp in sampler.next(2).features.inputs]
  absl_logger = logging.get_absl_logger()
  level = absl_logger.level
  absl_logger.setLevel(pylogging.ERROR)  # Not the dropped-argument warning.
  try:
    return any(a.shape != b.shape or not np.array_equal(a, b)
               for a, b in zip(inputs(0.1), inputs(0.9)))
  finally:
    absl_logger.setLevel(level)


def _probs_tag(er_probs: Sequence[float] | None) -> str:
  if not er_probs:
    return 'pclrs'
  text = ','.join(f'{p:g}' for p in er_probs)
  return f'p{zlib.crc32(text.encode()):08x}'


def _pad_time(feedback: clrs.Feedback, steps: int) -> clrs.Feedback:
  """Pads every hint's time axis with zeros to ``steps``."""
  def pad(dp):
    extra = steps - dp.data.shape[0]
    width = [(0, extra)] + [(0, 0)] * (dp.data.ndim - 1)
    return clrs.DataPoint(dp.name, dp.location, dp.type_,
                          np.pad(dp.data, width))
  f = feedback.features
  features = clrs.Features(inputs=f.inputs,
                           hints=tuple(pad(dp) for dp in f.hints),
                           lengths=f.lengths)
  return clrs.Feedback(features=features, outputs=feedback.outputs)


def concatenate(parts: Sequence[clrs.Feedback]) -> clrs.Feedback:
  """Joins datasets along the graph axis (hints padded to one length)."""
  steps = max(dp.data.shape[0] for part in parts
              for dp in part.features.hints)
  parts = [_pad_time(part, steps) for part in parts]

  def join(trajs, axis):
    return tuple(clrs.DataPoint(dps[0].name, dps[0].location, dps[0].type_,
                                np.concatenate([dp.data for dp in dps],
                                               axis=axis))
                 for dps in zip(*trajs))
  features = clrs.Features(
      inputs=join([p.features.inputs for p in parts], 0),
      hints=join([p.features.hints for p in parts], 1),
      lengths=np.concatenate([np.asarray(p.features.lengths)
                              for p in parts]))
  return clrs.Feedback(features=features,
                       outputs=join([p.outputs for p in parts], 0))


def generate(algorithm: str, size: int, num_samples: int, seed: int, *,
             er_probs: Sequence[float] | None = None,
             with_hints: bool = False,
             random_pos: bool = False) -> clrs.Feedback:
  """Generates a dataset with CLRS's offline sampler, chunk by chunk.

  Args:
    algorithm: a CLRS-30 name.
    size: nodes per graph.
    num_samples: graphs.
    seed: base seed; chunk ``c`` uses a sampler seeded with ``(seed, c)``.
    er_probs: edge probabilities, one drawn per graph, for algorithms whose
      sampler takes them (None: CLRS's default).
    with_hints: keep every hint; otherwise :func:`steps_only`.
    random_pos: replace the evenly spaced ``pos`` input by sorted uniform
      draws (CLRS's ``process_random_pos``, as CLRS's ``run.py`` and the
      authors' DEAR code do), from a generator seeded per chunk.

  Returns:
    A ``Feedback`` of ``num_samples`` graphs, permutations enforced.
  """
  kwargs = {}
  if er_probs and takes_edge_probability(algorithm):
    kwargs['p'] = tuple(float(p) for p in er_probs)
  parts = []
  for chunk, start in enumerate(range(0, num_samples, GENERATION_CHUNK)):
    count = min(GENERATION_CHUNK, num_samples - start)
    chunk_seed = int(np.random.SeedSequence([seed, chunk]).generate_state(1)[0]
                     & 0x7FFFFFFF)
    sampler, _ = clrs.build_sampler(algorithm, num_samples=count,
                                    length=size, seed=chunk_seed, **kwargs)
    part = sampler.next()
    if random_pos:
      rng = np.random.RandomState(
          np.random.SeedSequence([seed, chunk, 1]).generate_state(1)[0])
      part = next(clrs.process_random_pos(iter([part]), rng))
    part = enforce_permutations(part)
    parts.append(part if with_hints else steps_only(part))
  return concatenate(parts)


def steps_only(feedback: clrs.Feedback) -> clrs.Feedback:
  """Keeps only the smallest hint, whose time axis still gives the steps.

  CLRS's ``Net`` reads the number of processor steps from
  ``hints[0].data.shape[0]`` and uses hint values only when it encodes or
  decodes hints; for a model that does neither, the result is unchanged.
  """
  hints = feedback.features.hints
  smallest = min(hints, key=lambda dp: dp.data[0].size)
  features = clrs.Features(inputs=feedback.features.inputs,
                           hints=(smallest,),
                           lengths=feedback.features.lengths)
  return clrs.Feedback(features=features, outputs=feedback.outputs)


def num_graphs(feedback: clrs.Feedback) -> int:
  return int(np.asarray(feedback.features.lengths).shape[0])


def num_nodes(feedback: clrs.Feedback) -> int:
  """N, from the first node-level input (every CLRS algorithm has one)."""
  for dp in feedback.features.inputs:
    if dp.location == clrs.Location.NODE:
      return int(np.asarray(dp.data).shape[1])
  raise ValueError('no node-level input to read the number of nodes from')


def subsample(feedback: clrs.Feedback, idx: np.ndarray) -> clrs.Feedback:
  """Graphs ``idx`` of a dataset (inputs/outputs batch axis 0, hints 1)."""
  def take(traj, axis):
    return [clrs.DataPoint(dp.name, dp.location, dp.type_,
                           np.take(dp.data, idx, axis=axis)) for dp in traj]
  f = feedback.features
  features = clrs.Features(inputs=take(f.inputs, 0), hints=take(f.hints, 1),
                           lengths=np.asarray(f.lengths)[idx])
  return clrs.Feedback(features=features, outputs=take(feedback.outputs, 0))


#: The first bytes of every dataset cache file: the format, then the SHA-256
#: digest of the pickle that follows. A file that lacks them (written before
#: cache files carried a checksum) or whose pickle does not match its digest
#: (bytes lost or overwritten in place) is generated again.
CACHE_MAGIC = b'deq_clrs dataset sha256\n'
_DIGEST_BYTES = hashlib.sha256().digest_size


def _atomic_pickle(obj, path: str) -> None:
  """Writes ``obj`` to ``path`` as a cache file: :data:`CACHE_MAGIC`, the
  SHA-256 of the pickle, the pickle. Atomic: a reader sees the old file or
  the whole new one, never a part."""
  payload = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
  directory = os.path.dirname(path)
  try:
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix='.tmp')
  except OSError as error:
    raise UserError(
        f'cannot write the dataset cache into --data_dir={directory} '
        f'({error.strerror or error}); choose a directory you can create '
        f'and write to') from error
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(CACHE_MAGIC)
      f.write(hashlib.sha256(payload).digest())
      f.write(payload)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


class _DamagedCacheError(Exception):
  """A cache file whose bytes are not those that were written."""


def _verified_payload(path: str) -> bytes:
  """The pickle of a cache file, after checking it against its digest.

  Raises:
    _DamagedCacheError: the file has no checksum header, or its pickle does
      not match the digest.
  """
  with open(path, 'rb') as f:
    content = f.read()
  header = len(CACHE_MAGIC) + _DIGEST_BYTES
  if not content.startswith(CACHE_MAGIC) or len(content) < header:
    raise _DamagedCacheError(
        'no checksum (written before cache files carried one, or its first '
        'bytes are damaged)')
  digest = content[len(CACHE_MAGIC):header]
  payload = content[header:]
  actual = hashlib.sha256(payload).digest()
  if actual != digest:
    raise _DamagedCacheError(
        f'checksum mismatch (the SHA-256 of its {len(payload)} data bytes is '
        f'{actual.hex()[:12]}..., the file says {digest.hex()[:12]}...: cut '
        f'short or overwritten)')
  return payload


def _read_cached(path: str, num_samples: int) -> clrs.Feedback | None:
  """A cached dataset, or None (with one warning naming the file and the
  reason) if the file is damaged or has no checksum."""
  try:
    payload = _verified_payload(path)
  except _DamagedCacheError as error:
    logging.warning('dataset cache file %s: %s; generating it again', path,
                    error)
    return None
  except OSError as error:
    logging.warning('dataset cache file %s is unreadable (%s); generating it '
                    'again', path, error)
    return None
  try:
    feedback = pickle.loads(payload)
    if not isinstance(feedback, clrs.Feedback):
      raise TypeError(f'holds a {type(feedback).__name__}, not a Feedback')
    if num_graphs(feedback) != num_samples:
      raise ValueError(f'holds {num_graphs(feedback)} graphs, not '
                       f'{num_samples}')
  except Exception as error:  # pylint: disable=broad-except
    # A checksum that matches but a pickle that does not load: another
    # program's file under this name, or one written by other code.
    logging.warning('dataset cache file %s is unreadable (%s: %s); '
                    'generating it again', path, type(error).__name__, error)
    return None
  return feedback


def cache_path(algorithm: str, split: str, size: int, num_samples: int, *,
               data_dir: str, data_seed: int = 0, with_hints: bool = False,
               er_probs: Sequence[float] | None = None,
               random_pos: bool = False) -> str:
  """The file in ``data_dir`` that caches one dataset (arguments as for
  :func:`load_dataset`), named after everything that makes its graphs."""
  seed = dataset_seed(data_seed, split, size)
  name = (f'{algorithm}_{split}_n{size}_k{num_samples}_s{seed}_'
          f'{_probs_tag(er_probs)}_'
          f'{"hints" if with_hints else "steps"}_perm'
          f'{"_rpos" if random_pos else ""}.pkl')
  return os.path.join(data_dir, name)


def load_or_make(path: str, num_samples: int,
                 make: Callable[[], clrs.Feedback]) -> clrs.Feedback:
  """The dataset cached at ``path``; made by ``make()`` and cached if the
  file is missing, damaged or unreadable (see :func:`load_dataset`)."""
  if os.path.exists(path):
    feedback = _read_cached(path, num_samples)
    if feedback is not None:
      return feedback
  feedback = make()
  _atomic_pickle(feedback, path)
  return feedback


def load_dataset(algorithm: str, split: str, size: int, num_samples: int, *,
                 data_dir: str, data_seed: int = 0,
                 with_hints: bool = False,
                 er_probs: Sequence[float] | None = None,
                 random_pos: bool = False) -> clrs.Feedback:
  """Loads one dataset from ``data_dir``, generating and caching it once.

  Every cache file carries the SHA-256 of its contents, checked before it
  is unpickled: a file that fails the check (cut short, bytes overwritten,
  or written before files carried a checksum) or cannot be read is named in
  one warning and generated again (the same seed gives the same graphs).

  Args:
    algorithm: a CLRS-30 name.
    split: ``'train'``, ``'val'`` or ``'test'`` (only changes the seed).
    size: nodes per graph (CLRS's ``length``).
    num_samples: graphs in the dataset.
    data_dir: cache directory.
    data_seed: base seed of every dataset.
    with_hints: keep every hint (for models that use hints); otherwise
      :func:`steps_only`.
    er_probs: Erdos-Renyi edge probabilities (see :func:`generate`).
    random_pos: randomised ``pos`` inputs (see :func:`generate`).

  Returns:
    A ``Feedback`` holding all ``num_samples`` graphs (hints [T, B, ...]).
  """
  path = cache_path(algorithm, split, size, num_samples, data_dir=data_dir,
                    data_seed=data_seed, with_hints=with_hints,
                    er_probs=er_probs, random_pos=random_pos)
  return load_or_make(path, num_samples, lambda: generate(
      algorithm, size, num_samples, dataset_seed(data_seed, split, size),
      er_probs=er_probs, with_hints=with_hints, random_pos=random_pos))


@dataclasses.dataclass
class TrainStream:
  """Training batches as a deterministic function of ``(seed, step)``.

  Attributes:
    pools: size -> cached training pool of that size.
    batch_size: graphs per batch.
    seed: run seed.
  """
  pools: dict[int, clrs.Feedback]
  batch_size: int
  seed: int

  @classmethod
  def load(cls, algorithm: str, sizes: Sequence[int], samples_per_size: int,
           batch_size: int, seed: int, *, data_dir: str, data_seed: int = 0,
           with_hints: bool = False,
           er_probs: Sequence[float] | None = None,
           random_pos: bool = False) -> TrainStream:
    pools = {int(n): load_dataset(algorithm, 'train', int(n),
                                  samples_per_size, data_dir=data_dir,
                                  data_seed=data_seed, with_hints=with_hints,
                                  er_probs=er_probs, random_pos=random_pos)
             for n in sizes}
    return cls(pools=pools, batch_size=batch_size, seed=seed)

  @property
  def sizes(self) -> list[int]:
    return sorted(self.pools)

  def batch(self, step: int) -> clrs.Feedback:
    """The batch of training step ``step`` (graph size drawn uniformly)."""
    rng = np.random.default_rng([self.seed, step])
    size = self.sizes[rng.integers(len(self.sizes))]
    pool = self.pools[size]
    idx = rng.integers(0, num_graphs(pool), self.batch_size)
    return subsample(pool, idx)


def batches(feedback: clrs.Feedback, batch_size: int
            ) -> list[clrs.Feedback]:
  """Splits a dataset into consecutive batches (the last may be smaller)."""
  total = num_graphs(feedback)
  return [subsample(feedback, np.arange(i, min(i + batch_size, total)))
          for i in range(0, total, batch_size)]


def mean_steps(feedback: clrs.Feedback) -> float:
  """Mean true number of algorithm steps (CLRS ``lengths``) per graph."""
  return float(np.mean(np.asarray(feedback.features.lengths)))
