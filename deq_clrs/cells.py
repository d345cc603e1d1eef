"""Flax linen message-passing cells: one step ``H' = P(H, U, E, G, A)``.

A cell is a Flax module called as

    cell.apply(variables, node_fts, edge_fts, graph_fts, adj_mat, hidden)

with the shapes of a CLRS processor:

* ``node_fts`` U: [B, N, F] encoded node inputs,
* ``edge_fts`` E: [B, N, N, F] encoded edge inputs,
* ``graph_fts`` G: [B, F] encoded graph inputs,
* ``adj_mat`` A: [B, N, N], ``A[b, s, r] > 0`` if node s sends to node r,
* ``hidden`` H: [B, N, D] node states,

and returns the next node states [B, N, D]. Cells know nothing of CLRS or of
solvers: they are pure functions of their parameters, which is what the
equilibrium layer needs to pass the parameters into jaxopt explicitly.
"""

from __future__ import annotations

import collections
import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

AGGREGATIONS = ('max', 'sum', 'mean')
MSG_MLPS = ('reference', 'authors', 'simple')
COMPUTE_DTYPES = ('float32', 'bfloat16')


def _check(aggregation: str, msg_mlp: str = 'reference') -> None:
  if aggregation not in AGGREGATIONS:
    raise ValueError(f'unknown aggregation {aggregation!r}; expected one of '
                     f'{list(AGGREGATIONS)}')
  if msg_mlp not in MSG_MLPS:
    raise ValueError(f'unknown msg_mlp {msg_mlp!r}; expected one of '
                     f'{list(MSG_MLPS)}')


def message_mlp(msgs: jax.Array, mid: int, kind: str,
                prefix: str = 'msg', dtype=None) -> jax.Array:
  """The layers applied to summed messages [..., mid]; returns [..., mid].

  Must be called inside a compact Flax method: the layers become submodules
  of the calling module, named after ``prefix``.

  * ``'reference'`` (the authors' DEAR processor): ``[Dense(mid), LayerNorm,
    ReLU]`` twice, parameters ``{prefix}_mlp_0``, ``{prefix}_norm_0``,
    ``{prefix}_mlp_1``, ``{prefix}_norm_1``.
  * ``'authors'`` (the order in the authors' code): ``[LayerNorm, ReLU,
    Dense(mid)]`` twice, so messages may be negative; parameters
    ``{prefix}_norm_0``, ``{prefix}_mlp_0``, ``{prefix}_norm_1``,
    ``{prefix}_mlp_1``.
  * ``'simple'`` (this project's first cell): ``Dense(mid)(relu(msgs))``,
    parameters ``{prefix}_mlp``.

  ``dtype`` is the layers' compute dtype (``None``: the inputs'; the
  parameters keep theirs).
  """
  dense = functools.partial(nn.Dense, mid, dtype=dtype)
  norm = functools.partial(nn.LayerNorm, dtype=dtype)
  if kind == 'simple':
    return dense(name=f'{prefix}_mlp')(jax.nn.relu(msgs))
  if kind == 'authors':
    for i in range(2):
      msgs = jax.nn.relu(norm(name=f'{prefix}_norm_{i}')(msgs))
      msgs = dense(name=f'{prefix}_mlp_{i}')(msgs)
    return msgs
  for i in range(2):
    msgs = dense(name=f'{prefix}_mlp_{i}')(msgs)
    msgs = jax.nn.relu(norm(name=f'{prefix}_norm_{i}')(msgs))
  return msgs


def aggregate(msgs: jax.Array, adj_mat: jax.Array, how: str) -> jax.Array:
  """Reduces messages [B, N_send, N_recv, D] over senders with ``adj_mat``.

  Receivers without any sender get zeros. Returns [B, N_recv, D].
  """
  mask = (adj_mat > 0)[..., None]
  if how == 'max':
    big_neg = jnp.finfo(msgs.dtype).min
    out = jnp.max(jnp.where(mask, msgs, big_neg), axis=1)
    has_sender = jnp.any(mask, axis=1)
    return jnp.where(has_sender, out, 0.0)
  summed = jnp.sum(jnp.where(mask, msgs, 0.0), axis=1)
  if how == 'sum':
    return summed
  count = jnp.sum(mask, axis=1).astype(msgs.dtype)
  return summed / jnp.maximum(count, 1.0)


# Generators of SL(2, Z_n) as (a, b, c, d) for [[a, b], [c, d]], in the fixed
# order used by the breadth-first enumeration: S, S^-1, T, T^-1 with
# S = [[1, 1], [0, 1]] and T = [[1, 0], [1, 1]] (entries taken mod n).
SL2_GENERATORS = ((1, 1, 0, 1), (1, -1, 0, 1), (1, 0, 1, 1), (1, 0, -1, 1))

Matrix2 = tuple[int, int, int, int]


def sl2_order(n: int) -> int:
  """|SL(2, Z_n)| = n^3 prod_{p | n, p prime} (1 - 1 / p^2), for n >= 2."""
  if n < 2:
    raise ValueError(f'SL(2, Z_n) needs n >= 2, got {n}')
  order, rest, p = n ** 3, n, 2
  while rest > 1:
    if p * p > rest:
      p = rest  # what is left is a prime
    if rest % p == 0:
      order = order // (p * p) * (p * p - 1)
      while rest % p == 0:
        rest //= p
    p += 1
  return order


def _matmul_mod(x: Matrix2, y: Matrix2, n: int) -> Matrix2:
  a, b, c, d = x
  e, f, g, h = y
  return ((a * e + b * g) % n, (a * f + b * h) % n,
          (c * e + d * g) % n, (c * f + d * h) % n)


@functools.lru_cache(maxsize=None)
def sl2_elements(n: int) -> tuple[Matrix2, ...]:
  """All elements of SL(2, Z_n) in breadth-first order from the identity.

  The search visits, from each element g in turn, ``g @ s`` for the
  generators s of :data:`SL2_GENERATORS` in that order, so element i > 0 is
  a neighbour in the Cayley graph of an element listed before it.

  Args:
    n: the modulus, >= 2.

  Returns:
    The ``sl2_order(n)`` matrices as ``(a, b, c, d)`` tuples with entries in
    ``[0, n)``, the identity first.
  """
  if n < 2:
    raise ValueError(f'SL(2, Z_n) needs n >= 2, got {n}')
  gens = [tuple(v % n for v in g) for g in SL2_GENERATORS]
  identity = (1, 0, 0, 1)
  seen = {identity}
  order = [identity]
  queue = collections.deque(order)
  while queue:
    g = queue.popleft()
    for s in gens:
      h = _matmul_mod(g, s, n)
      if h not in seen:
        seen.add(h)
        order.append(h)
        queue.append(h)
  return tuple(order)


def cayley_modulus(num_nodes: int) -> int:
  """The smallest n >= 2 with |SL(2, Z_n)| >= ``num_nodes``."""
  n = 2
  while sl2_order(n) < num_nodes:
    n += 1
  return n


@functools.lru_cache(maxsize=None)
def cayley_adjacency(num_nodes: int) -> np.ndarray:
  """Adjacency [N, N] of the Cayley expander graph used for N nodes.

  The Cayley graph of SL(2, Z_n) for the generators S, S^-1, T, T^-1 (see
  :data:`SL2_GENERATORS`; edges g -- g s) is 4-regular and undirected for
  n >= 3 (for n = 2, S and T are their own inverses and it is a 6-cycle).
  With n = :func:`cayley_modulus` (N), node i is the i-th element of
  :func:`sl2_elements` (n) and the graph is the subgraph induced by the first
  N elements. Because that order is breadth-first, the subgraph is
  connected; its degrees are at most 4.

  This truncation is what Expander Graph Propagation (Deac et al., 2022)
  does. Cayley Graph Propagation (Wilson et al., 2024), which DEAR's CGP
  option follows, keeps the other |SL(2, Z_n)| - N elements as virtual nodes;
  that would give the processor more nodes than the N of its input, which
  the cells' [B, N, D] -> [B, N, D] interface does not allow, so they are
  dropped here.

  Args:
    num_nodes: N >= 1; N = 1 gives ``[[0]]``.

  Returns:
    A read-only float32 [N, N] 0/1 matrix, symmetric with zero diagonal
    (cached: the same array is returned for the same N).
  """
  if num_nodes < 1:
    raise ValueError(f'num_nodes must be >= 1, got {num_nodes}')
  n = cayley_modulus(num_nodes)
  elements = sl2_elements(n)[:num_nodes]
  index = {g: i for i, g in enumerate(elements)}
  gens = [tuple(v % n for v in g) for g in SL2_GENERATORS]
  adj = np.zeros((num_nodes, num_nodes), np.float32)
  for i, g in enumerate(elements):
    for s in gens:
      j = index.get(_matmul_mod(g, s, n))
      if j is not None:
        adj[i, j] = adj[j, i] = 1.0
  adj.flags.writeable = False
  return adj


CAYLEY_DEGREE = 4


@functools.lru_cache(maxsize=None)
def cayley_neighbours(num_nodes: int) -> tuple[np.ndarray, np.ndarray]:
  """The rows of :func:`cayley_adjacency` as padded neighbour lists.

  Returns:
    ``(index, mask)``, both [N, 4] and read-only: ``index[i, k]`` (int32) is
    the k-th neighbour of node i in increasing order where ``mask[i, k]``
    (float32 1/0) is 1, and 0 in the padding where it is 0.
  """
  adj = cayley_adjacency(num_nodes)
  index = np.zeros((num_nodes, CAYLEY_DEGREE), np.int32)
  mask = np.zeros((num_nodes, CAYLEY_DEGREE), np.float32)
  for i in range(num_nodes):
    nbrs = np.flatnonzero(adj[i])
    index[i, :len(nbrs)] = nbrs
    mask[i, :len(nbrs)] = 1.0
  index.flags.writeable = False
  mask.flags.writeable = False
  return index, mask


def cayley_messages(z: jax.Array, graph_fts: jax.Array, mid: int,
                    msg_mlp: str, how: str, dtype=None) -> jax.Array:
  """Aggregated messages [B, N, mid] over the Cayley graph of N nodes.

  ``m_sr = MLP(C_1 z_s + C_2 z_r + C_g G)`` for the Cayley edges s -- r of
  :func:`cayley_adjacency` (N) (which have no features), with the MLP of
  :func:`message_mlp` of kind ``msg_mlp``, reduced over the senders of each
  receiver with aggregation ``how``. The graph is at most 4-regular, so the
  messages are gathered from padded neighbour lists
  (:func:`cayley_neighbours`): [B, 4, N, mid] rather than [B, N, N, mid];
  the result is what :func:`aggregate` gives on the dense adjacency.

  Must be called inside a compact Flax method; creates ``cay_send``,
  ``cay_recv``, ``cay_graph`` and the MLP's ``cay_mlp*`` / ``cay_norm*``.

  Args:
    z: [B, N, Fz] node inputs and states.
    graph_fts: [B, Fg] graph features.
    mid: message width.
    msg_mlp: a kind of :data:`MSG_MLPS`.
    how: a kind of :data:`AGGREGATIONS`.
    dtype: the layers' compute dtype (``None``: the inputs').

  Returns:
    [B, N, mid]; zeros for a receiver without Cayley neighbours (N = 1).
  """
  batch, num_nodes = z.shape[:2]
  index, mask = cayley_neighbours(num_nodes)  # [N, K] each, static
  c_send = nn.Dense(mid, dtype=dtype, name='cay_send')(z)
  c_recv = nn.Dense(mid, dtype=dtype, name='cay_recv')(z)
  c_graph = nn.Dense(mid, dtype=dtype, name='cay_graph')(graph_fts)
  # Slot k of receiver r holds sender index[r, k]: [B, K, N, mid].
  msgs = (c_send[:, index.T] + c_recv[:, None, :, :]
          + c_graph[:, None, None, :])
  msgs = message_mlp(msgs, mid, msg_mlp, prefix='cay', dtype=dtype)
  slots = jnp.broadcast_to(jnp.asarray(mask.T), (batch,) + mask.T.shape)
  return aggregate(msgs, slots, how)


@dataclasses.dataclass(frozen=True)
class CellConfig:
  """Which cell to build and its hyperparameters (not its size).

  The only place the cells' hyperparameters are declared:
  :class:`GatedMPNNCell` and :class:`TripletGatedMPNNCell` take one of these
  whole as their attribute ``config`` (the triplet cell hands it on to its
  pairwise part), and the processor factory and experiment configs read the
  defaults from here too.

  Attributes:
    kind: a key of :data:`CELLS`; it picks the class in :meth:`build`, the
      cells themselves do not read it.
    mid_size: width of the message MLP (``None``: the node-state size D).
    aggregation: ``'max'`` (DEAR), ``'sum'`` or ``'mean'``.
    msg_mlp: the MLP after the summed messages (see :func:`message_mlp`):
      ``'reference'`` (``[Dense, LayerNorm, ReLU]`` twice: the authors'
      layers, in this project's first reading of their order),
      ``'authors'`` (``[LayerNorm, ReLU, Dense]`` twice: their code's order)
      or ``'simple'`` (ReLU then one Dense; the default before ``msg_mlp``
      existed).
    layer_norm: apply LayerNorm to the candidate state.
    gated: mix the candidate with the previous state through a learned gate;
      if False the candidate is the next state.
    gate_bias: initial bias of the gate's last layer. 0 (a fresh gate near
      1/2) as in the authors' run scripts; a negative value such as their
      optional -3 makes a fresh cell start near "keep H".
    cayley: also pass messages over the Cayley expander graph (parameters
      ``cay_*`` and ``upd_cay``); off, the cell is exactly the one without
      this option.
    complete_graph: pass messages between every pair of nodes, whatever
      ``adj_mat`` says (CLRS's MPNN processor always does; the authors' code
      does for algorithms without an adjacency input, e.g. sorting).
    mask_pointers: not the cell's but its processor's: CLRS's ``inf_bias``
      (pointer logits of non-edges set below every edge's, so a node points
      only along an edge or to itself, as in the authors' decoder); only for
      algorithms with a graph input.
    nb_triplet_fts: width of the triplet features; ``'triplet_mpnn'`` only.
    compute_dtype: ``'float32'`` or ``'bfloat16'``: the dtype of the cell's
      matmuls and LayerNorms (for accelerators with fast bfloat16 units).
      Parameters stay float32 and the cell returns the dtype of the state
      it is given, so the solver's iterates and Anderson's least squares
      stay float32 either way.
  """
  kind: str = 'mpnn'
  mid_size: int | None = None
  aggregation: str = 'max'
  msg_mlp: str = 'reference'
  layer_norm: bool = True
  gated: bool = True
  gate_bias: float = 0.0
  cayley: bool = False
  complete_graph: bool = False
  mask_pointers: bool = False
  nb_triplet_fts: int = 8
  compute_dtype: str = 'float32'

  def __post_init__(self):
    if self.kind not in CELLS:
      raise ValueError(f'unknown cell {self.kind!r}; expected one of '
                       f'{sorted(CELLS)}')
    _check(self.aggregation, self.msg_mlp)
    if self.compute_dtype not in COMPUTE_DTYPES:
      raise ValueError(f'unknown compute_dtype {self.compute_dtype!r}; '
                       f'expected one of {list(COMPUTE_DTYPES)}')

  @property
  def dtype(self) -> jnp.dtype | None:
    """The layers' ``dtype``: ``None`` for ``'float32'`` (Flax's default,
    the inputs' dtype, so float64 tests stay float64), else bfloat16."""
    if self.compute_dtype == 'float32':
      return None
    return jnp.dtype(self.compute_dtype)

  def build(self, out_size: int) -> nn.Module:
    """Instantiates an unbound cell for node states of size ``out_size``.

    The cell is created with ``parent=None`` so that a module building it
    inside its own ``__call__`` does not adopt it as a submodule.
    """
    return CELLS[self.kind](out_size=out_size, config=self, parent=None)


class GatedMPNNCell(nn.Module):
  """DEAR's processor step: a gated max-aggregation MPNN with LayerNorm.

  With ``z_i = [U_i || H_i]``, messages
  ``m_sr = MLP(W_1 z_s + W_2 z_r + W_e E_sr + W_g G)`` (MLP: see
  :func:`message_mlp`) of size ``config.mid_size`` are aggregated over
  the senders of each receiver; the candidate state is
  ``c = LayerNorm(W_z z + W_m agg)`` and the gate
  ``g = sigmoid(MLP([z || agg]))`` (last layer's initial bias
  ``config.gate_bias``) mixes ``H' = g * c + (1 - g) * H``.

  With ``config.cayley`` (Cayley graph propagation) the cell also passes
  messages over the Cayley expander graph of :func:`cayley_adjacency` (N),
  independent of ``A``, with weights of its own (:func:`cayley_messages`);
  their aggregate ``agg_c`` adds ``W_c agg_c`` to the candidate before its
  LayerNorm and joins the gate's input ``[z || agg || agg_c]``.

  Attributes:
    out_size: D, the size of the node state (the cell maps [B,N,D] to
      [B,N,D]).
    config: the hyperparameters ``mid_size`` (``None``: ``out_size``),
      ``aggregation``, ``msg_mlp``, ``layer_norm``, ``gated``, ``gate_bias``,
      ``cayley`` and ``complete_graph``; see :class:`CellConfig`. Its other
      fields are not read here.
  """
  out_size: int
  config: CellConfig = dataclasses.field(default_factory=CellConfig)

  @nn.compact
  def __call__(self, node_fts: jax.Array, edge_fts: jax.Array,
               graph_fts: jax.Array, adj_mat: jax.Array,
               hidden: jax.Array) -> jax.Array:
    config = self.config
    mid = config.mid_size or self.out_size
    dense = functools.partial(nn.Dense, dtype=config.dtype)
    z = jnp.concatenate([node_fts, hidden], axis=-1)
    m_send = dense(mid, name='msg_send')(z)
    m_recv = dense(mid, name='msg_recv')(z)
    m_edge = dense(mid, name='msg_edge')(edge_fts)
    m_graph = dense(mid, name='msg_graph')(graph_fts)
    msgs = (m_send[:, :, None, :] + m_recv[:, None, :, :] + m_edge
            + m_graph[:, None, None, :])
    msgs = message_mlp(msgs, mid, config.msg_mlp, dtype=config.dtype)
    if config.complete_graph:
      adj_mat = jnp.ones_like(adj_mat)
    agg = aggregate(msgs, adj_mat, config.aggregation)
    cand = (dense(self.out_size, name='upd_self')(z)
            + dense(self.out_size, name='upd_msg')(agg))
    gate_in = [z, agg]
    if config.cayley:
      agg_cay = cayley_messages(z, graph_fts, mid, config.msg_mlp,
                                config.aggregation, config.dtype)
      cand = cand + dense(self.out_size, name='upd_cay')(agg_cay)
      gate_in.append(agg_cay)
    if config.layer_norm:
      cand = nn.LayerNorm(dtype=config.dtype, name='norm')(cand)
    if not config.gated:
      return cand.astype(hidden.dtype)
    g = jnp.concatenate(gate_in, axis=-1)
    g = jax.nn.relu(dense(self.out_size, name='gate_hidden')(g))
    g = dense(self.out_size, name='gate_out',
              bias_init=nn.initializers.constant(config.gate_bias))(g)
    g = jax.nn.sigmoid(g)
    return (g * cand + (1.0 - g) * hidden).astype(hidden.dtype)


class TripletGatedMPNNCell(nn.Module):
  """The gated MPNN with CLRS-style triplet (edge-conditioned) reasoning.

  Besides the pairwise messages of :class:`GatedMPNNCell`, every triple
  (i, j, k) gets ``t_ijk = a_i + b_j + c_k + d_ij + e_ik + f_jk + g`` of size
  ``config.nb_triplet_fts``; ``max_i t_ijk`` becomes an edge message that is
  max-aggregated over j into the receiver k. Costs O(N^3 * nb_triplet_fts).

  Attributes:
    out_size: D, as in :class:`GatedMPNNCell`.
    config: ``nb_triplet_fts`` (the width of the triplet features) and the
      hyperparameters of the pairwise part, a :class:`GatedMPNNCell` that
      is given this same config; see :class:`CellConfig`.
  """
  out_size: int
  config: CellConfig = dataclasses.field(default_factory=CellConfig)

  @nn.compact
  def __call__(self, node_fts: jax.Array, edge_fts: jax.Array,
               graph_fts: jax.Array, adj_mat: jax.Array,
               hidden: jax.Array) -> jax.Array:
    t = self.config.nb_triplet_fts
    dense = functools.partial(nn.Dense, dtype=self.config.dtype)
    z = jnp.concatenate([node_fts, hidden], axis=-1)
    tri = (dense(t, name='tri_i')(z)[:, :, None, None, :]
           + dense(t, name='tri_j')(z)[:, None, :, None, :]
           + dense(t, name='tri_k')(z)[:, None, None, :, :]
           + dense(t, name='tri_ij')(edge_fts)[:, :, :, None, :]
           + dense(t, name='tri_ik')(edge_fts)[:, :, None, :, :]
           + dense(t, name='tri_jk')(edge_fts)[:, None, :, :, :]
           + dense(t, name='tri_g')(graph_fts)[:, None, None, None, :])
    tri_edge = dense(self.out_size, name='tri_out')(jnp.max(tri, axis=1))
    pair = GatedMPNNCell(out_size=self.out_size, config=self.config,
                         name='pairwise')
    # The triplet edge messages join the pairwise edge features.
    edge_in = jnp.concatenate([edge_fts, tri_edge], axis=-1)
    return pair(node_fts, edge_in, graph_fts, adj_mat, hidden)


CELLS = {
    'mpnn': GatedMPNNCell,
    'triplet_mpnn': TripletGatedMPNNCell,
}
