"""Tests of the Flax message-passing cells."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from deq_clrs import cells

B, N, F, D = 2, 5, 8, 8


def graph(seed=0, density=0.5):
  ks = jax.random.split(jax.random.PRNGKey(seed), 5)
  node = jax.random.normal(ks[0], (B, N, F))
  edge = jax.random.normal(ks[1], (B, N, N, F))
  gfts = jax.random.normal(ks[2], (B, F))
  adj = (jax.random.uniform(ks[3], (B, N, N)) < density).astype(jnp.float32)
  hidden = jax.random.normal(ks[4], (B, N, D))
  return node, edge, gfts, adj, hidden


@pytest.mark.parametrize('kind', sorted(cells.CELLS))
def test_cells_map_states_to_states(kind):
  cell = cells.CellConfig(kind=kind).build(D)
  args = graph()
  variables = cell.init(jax.random.PRNGKey(0), *args)
  out = cell.apply(variables, *args)
  assert out.shape == (B, N, D)
  assert bool(jnp.all(jnp.isfinite(out)))
  assert cell.out_size == D


def test_aggregate_reduces_over_senders_only():
  msgs = jnp.arange(2 * 3 * 3 * 1, dtype=jnp.float32).reshape(2, 3, 3, 1)
  adj = jnp.array([[[1, 0, 0], [1, 0, 0], [0, 0, 0]]] * 2, jnp.float32)
  out = cells.aggregate(msgs, adj, 'max')
  # Receiver 0 hears senders 0 and 1; receivers 1 and 2 hear nobody -> 0.
  np.testing.assert_allclose(out[0, :, 0], [msgs[0, 1, 0, 0], 0.0, 0.0])
  out = cells.aggregate(msgs, adj, 'sum')
  np.testing.assert_allclose(out[0, :, 0], [msgs[0, 0, 0, 0] + msgs[0, 1, 0, 0],
                                            0.0, 0.0])
  out = cells.aggregate(msgs, adj, 'mean')
  np.testing.assert_allclose(out[0, 0, 0], (msgs[0, 0, 0, 0] +
                                            msgs[0, 1, 0, 0]) / 2)


def test_messages_flow_only_along_edges():
  node, edge, gfts, adj, hidden = graph()
  adj = jnp.zeros_like(adj).at[:, 0, 1].set(1.0)  # only edge 0 -> 1
  cell = cells.GatedMPNNCell(out_size=D)
  variables = cell.init(jax.random.PRNGKey(0), node, edge, gfts, adj, hidden)
  base = cell.apply(variables, node, edge, gfts, adj, hidden)
  # Changing node 2's state changes only node 2 (it sends to nobody).
  hidden2 = hidden.at[:, 2].add(1.0)
  out = cell.apply(variables, node, edge, gfts, adj, hidden2)
  changed = jnp.any(jnp.abs(out - base) > 1e-6, axis=(0, 2))
  np.testing.assert_array_equal(changed, [False, False, True, False, False])
  # Changing node 0's state reaches its receiver 1.
  hidden0 = hidden.at[:, 0].add(1.0)
  out = cell.apply(variables, node, edge, gfts, adj, hidden0)
  changed = jnp.any(jnp.abs(out - base) > 1e-6, axis=(0, 2))
  np.testing.assert_array_equal(changed, [True, True, False, False, False])


def test_fresh_gate_starts_near_keeping_the_state():
  args = graph()
  hidden = args[-1]
  gated = cells.CellConfig(gate_bias=-6.0).build(D)
  out = gated.apply(gated.init(jax.random.PRNGKey(0), *args), *args)
  rel_change = jnp.linalg.norm(out - hidden) / jnp.linalg.norm(hidden)
  assert float(rel_change) < 0.1
  ungated = cells.CellConfig(gated=False).build(D)
  out = ungated.apply(ungated.init(jax.random.PRNGKey(0), *args), *args)
  # Without gate the output is a LayerNorm'd candidate: zero mean per node.
  np.testing.assert_allclose(jnp.mean(out, -1), 0.0, atol=1e-5)


def test_bad_cell_config_is_refused():
  with pytest.raises(ValueError, match='unknown cell'):
    cells.CellConfig(kind='gat')
  with pytest.raises(ValueError, match='aggregation'):
    cells.CellConfig(aggregation='min')


def _param_names(variables):
  return set(variables['params'])


def _legacy_mpnn(params, node, edge, gfts, adj, hidden):
  """The gated MPNN as it was before ``msg_mlp``, written out by hand."""
  def dense(name, x):
    return x @ params[name]['kernel'] + params[name]['bias']

  def layer_norm(name, x):
    mean = jnp.mean(x, -1, keepdims=True)
    var = jnp.var(x, -1, keepdims=True)
    x = (x - mean) / jnp.sqrt(var + 1e-6)
    return x * params[name]['scale'] + params[name]['bias']

  z = jnp.concatenate([node, hidden], -1)
  msgs = (dense('msg_send', z)[:, :, None] + dense('msg_recv', z)[:, None]
          + dense('msg_edge', edge) + dense('msg_graph', gfts)[:, None, None])
  msgs = dense('msg_mlp', jax.nn.relu(msgs))
  agg = cells.aggregate(msgs, adj, 'max')
  cand = layer_norm('norm', dense('upd_self', z) + dense('upd_msg', agg))
  g = jax.nn.relu(dense('gate_hidden', jnp.concatenate([z, agg], -1)))
  g = jax.nn.sigmoid(dense('gate_out', g))
  return g * cand + (1.0 - g) * hidden


LEGACY_PARAMS = {'gate_hidden', 'gate_out', 'msg_edge', 'msg_graph',
                 'msg_mlp', 'msg_recv', 'msg_send', 'norm', 'upd_msg',
                 'upd_self'}


def test_simple_msg_mlp_is_the_legacy_cell():
  args = graph()
  cell = cells.CellConfig(msg_mlp='simple').build(D)
  variables = cell.init(jax.random.PRNGKey(0), *args)
  assert _param_names(variables) == LEGACY_PARAMS
  shapes = jax.tree_util.tree_map(jnp.shape, variables['params'])
  assert shapes['msg_mlp'] == {'kernel': (D, D), 'bias': (D,)}
  assert shapes['gate_hidden']['kernel'] == (F + D + D, D)
  np.testing.assert_allclose(cell.apply(variables, *args),
                             _legacy_mpnn(variables['params'], *args),
                             rtol=1e-5, atol=1e-5)


def test_reference_msg_mlp_has_two_layer_norms():
  args = graph()
  assert cells.GatedMPNNCell(out_size=D).config.msg_mlp == 'reference'
  assert cells.CellConfig().msg_mlp == 'reference'
  cell = cells.CellConfig(mid_size=6).build(D)
  variables = cell.init(jax.random.PRNGKey(0), *args)
  names = _param_names(variables)
  assert names == (LEGACY_PARAMS - {'msg_mlp'}) | {
      'msg_mlp_0', 'msg_norm_0', 'msg_mlp_1', 'msg_norm_1'}
  shapes = jax.tree_util.tree_map(jnp.shape, variables['params'])
  assert shapes['msg_mlp_0']['kernel'] == (6, 6)
  assert shapes['msg_norm_1'] == {'scale': (6,), 'bias': (6,)}
  out = cell.apply(variables, *args)
  assert out.shape == (B, N, D)
  assert bool(jnp.all(jnp.isfinite(out)))


@pytest.mark.parametrize('msg_mlp', cells.MSG_MLPS)
def test_triplet_cell_passes_msg_mlp_to_its_pairwise_part(msg_mlp):
  args = graph()
  cell = cells.CellConfig(kind='triplet_mpnn', msg_mlp=msg_mlp).build(D)
  variables = cell.init(jax.random.PRNGKey(0), *args)
  names = set(variables['params']['pairwise'])
  if msg_mlp == 'simple':
    assert names == LEGACY_PARAMS
  else:
    assert {'msg_norm_0', 'msg_norm_1'} <= names
    assert 'msg_mlp' not in names


def test_bad_msg_mlp_is_refused():
  with pytest.raises(ValueError, match=r"msg_mlp 'mlp3'.*'reference'"):
    cells.CellConfig(msg_mlp='mlp3')
  # A cell's hyperparameters are a CellConfig, so they are checked before
  # any cell exists.
  with pytest.raises(ValueError, match="'deep'.*'simple'"):
    cells.TripletGatedMPNNCell(out_size=D,
                               config=cells.CellConfig(msg_mlp='deep'))


@pytest.mark.parametrize('kind', sorted(cells.CELLS))
def test_cells_declare_their_hyperparameters_only_in_cell_config(kind):
  """The modules' only fields are the size and one CellConfig, handed on
  whole by :meth:`CellConfig.build`."""
  fields = {f.name for f in dataclasses.fields(cells.CELLS[kind])}
  assert fields - {'parent', 'name'} == {'out_size', 'config'}
  assert cells.CELLS[kind](out_size=D).config == cells.CellConfig()
  config = cells.CellConfig(kind=kind, gate_bias=-1.5, cayley=True)
  built = config.build(D)
  assert type(built) is cells.CELLS[kind]
  assert (built.out_size, built.config) == (D, config)


# A value other than the default for every field of CellConfig.
NON_DEFAULT = {'kind': 'triplet_mpnn', 'mid_size': 6, 'aggregation': 'sum',
               'msg_mlp': 'authors', 'layer_norm': False, 'gated': False,
               'gate_bias': -2.0, 'cayley': True, 'complete_graph': True,
               'mask_pointers': True, 'nb_triplet_fts': 4,
               'compute_dtype': 'bfloat16'}


def test_triplet_cell_hands_every_field_to_its_pairwise_part():
  defaults = cells.CellConfig()
  assert set(NON_DEFAULT) == {f.name for f in dataclasses.fields(defaults)}
  config = cells.CellConfig(**NON_DEFAULT)
  assert all(getattr(config, name) != getattr(defaults, name)
             for name in NON_DEFAULT)
  seen = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, tuple(cells.CELLS.values())):
      seen.append((type(context.module), context.module.config))
    return next_fun(*args, **kwargs)

  cell = config.build(D)
  with nn.intercept_methods(record):
    cell.init(jax.random.PRNGKey(0), *graph())
  assert seen == [(cells.TripletGatedMPNNCell, config),
                  (cells.GatedMPNNCell, config)]


def test_triplet_cell_is_triplet_messages_into_a_pairwise_cell():
  """The triplet cell's output, bit for bit, from its parts: its own
  ``tri_*`` layers applied one by one and a separately built
  :class:`GatedMPNNCell` with the same config on ``params['pairwise']``."""
  node, edge, gfts, adj, hidden = args = graph()
  config = cells.CellConfig(**{**NON_DEFAULT, 'gated': True,
                              'compute_dtype': 'float32'})
  cell = config.build(D)
  params = cell.init(jax.random.PRNGKey(0), *args)['params']

  def dense(name, x):
    width = params[name]['bias'].shape[0]
    return nn.Dense(width).apply({'params': params[name]}, x)

  z = jnp.concatenate([node, hidden], axis=-1)
  tri = (dense('tri_i', z)[:, :, None, None, :]
         + dense('tri_j', z)[:, None, :, None, :]
         + dense('tri_k', z)[:, None, None, :, :]
         + dense('tri_ij', edge)[:, :, :, None, :]
         + dense('tri_ik', edge)[:, :, None, :, :]
         + dense('tri_jk', edge)[:, None, :, :, :]
         + dense('tri_g', gfts)[:, None, None, None, :])
  tri_edge = dense('tri_out', jnp.max(tri, axis=1))
  pair = cells.GatedMPNNCell(out_size=D, config=config)
  want = pair.apply({'params': params['pairwise']}, node,
                    jnp.concatenate([edge, tri_edge], axis=-1), gfts, adj,
                    hidden)
  np.testing.assert_array_equal(cell.apply({'params': params}, *args), want)


def _expected_shapes(dense: dict[str, tuple[int, int]],
                     norms: dict[str, int]) -> dict[str, tuple[int, ...]]:
  """Parameter path -> shape for Dense layers (kernel [in, out], bias [out])
  and LayerNorms (scale and bias [size])."""
  shapes = {}
  for name, (fan_in, fan_out) in dense.items():
    shapes[f'{name}/kernel'] = (fan_in, fan_out)
    shapes[f'{name}/bias'] = (fan_out,)
  for name, size in norms.items():
    shapes[f'{name}/scale'] = shapes[f'{name}/bias'] = (size,)
  return shapes


# Node, edge and graph input widths 3, 2 and 5, D = 7: z = [U || H] has 10.
_MPNN_DENSE = {'msg_send': (10, 7), 'msg_recv': (10, 7), 'msg_edge': (2, 7),
               'msg_graph': (5, 7), 'msg_mlp_0': (7, 7), 'msg_mlp_1': (7, 7),
               'upd_self': (10, 7), 'upd_msg': (7, 7),
               'gate_hidden': (17, 7), 'gate_out': (7, 7)}
_MPNN_NORMS = {'msg_norm_0': 7, 'msg_norm_1': 7, 'norm': 7}
# mid_size 6, nb_triplet_fts 4, Cayley messages; the pairwise edge input is
# [E || tri_out] (2 + 7) and the gate's [z || agg || agg_cay] (10 + 6 + 6).
_TRIPLET_DENSE = {
    'tri_i': (10, 4), 'tri_j': (10, 4), 'tri_k': (10, 4), 'tri_ij': (2, 4),
    'tri_ik': (2, 4), 'tri_jk': (2, 4), 'tri_g': (5, 4), 'tri_out': (4, 7),
    'pairwise/msg_send': (10, 6), 'pairwise/msg_recv': (10, 6),
    'pairwise/msg_edge': (9, 6), 'pairwise/msg_graph': (5, 6),
    'pairwise/msg_mlp_0': (6, 6), 'pairwise/msg_mlp_1': (6, 6),
    'pairwise/cay_send': (10, 6), 'pairwise/cay_recv': (10, 6),
    'pairwise/cay_graph': (5, 6), 'pairwise/cay_mlp_0': (6, 6),
    'pairwise/cay_mlp_1': (6, 6), 'pairwise/upd_self': (10, 7),
    'pairwise/upd_msg': (6, 7), 'pairwise/upd_cay': (6, 7),
    'pairwise/gate_hidden': (22, 7), 'pairwise/gate_out': (7, 7)}
_TRIPLET_NORMS = {'pairwise/msg_norm_0': 6, 'pairwise/msg_norm_1': 6,
                  'pairwise/cay_norm_0': 6, 'pairwise/cay_norm_1': 6,
                  'pairwise/norm': 7}


@pytest.mark.parametrize('config, dense, norms', [
    (cells.CellConfig(), _MPNN_DENSE, _MPNN_NORMS),
    (cells.CellConfig(kind='triplet_mpnn', mid_size=6, nb_triplet_fts=4,
                      cayley=True, msg_mlp='authors'),
     _TRIPLET_DENSE, _TRIPLET_NORMS)])
def test_parameter_trees_keep_their_names_and_shapes(config, dense, norms):
  """Saved checkpoints name these paths; a cell refactoring must keep them
  (the expected trees were read off the cells before their fields moved
  into ``config``)."""
  ks = jax.random.split(jax.random.PRNGKey(0), 4)
  args = (jax.random.normal(ks[0], (B, N, 3)),
          jax.random.normal(ks[1], (B, N, N, 2)),
          jax.random.normal(ks[2], (B, 5)), jnp.ones((B, N, N)),
          jax.random.normal(ks[3], (B, N, 7)))
  params = config.build(7).init(jax.random.PRNGKey(0), *args)['params']
  got = {'/'.join(k.key for k in path): leaf.shape
         for path, leaf in jax.tree_util.tree_leaves_with_path(params)}
  assert got == _expected_shapes(dense, norms)


@pytest.mark.parametrize('kind', sorted(cells.CELLS))
def test_gate_bias_starts_at_zero_by_default(kind):
  assert cells.CellConfig(kind=kind).gate_bias == 0.0
  assert cells.CELLS[kind](out_size=D).config.gate_bias == 0.0
  cell = cells.CellConfig(kind=kind).build(D)
  params = cell.init(jax.random.PRNGKey(0), *graph())['params']
  if kind == 'triplet_mpnn':
    params = params['pairwise']
  np.testing.assert_array_equal(params['gate_out']['bias'], np.zeros(D))
  cell = cells.CellConfig(kind=kind, gate_bias=-3.0).build(D)
  params = cell.init(jax.random.PRNGKey(0), *graph())['params']
  if kind == 'triplet_mpnn':
    params = params['pairwise']
  np.testing.assert_array_equal(params['gate_out']['bias'], np.full(D, -3.0))


def _connected(adj):
  seen, frontier = {0}, [0]
  while frontier:
    frontier = [j for i in frontier for j in np.flatnonzero(adj[i])
                if j not in seen and not seen.add(j)]
  return len(seen) == len(adj)


@pytest.mark.parametrize('n,order', [(2, 6), (3, 24), (4, 48), (5, 120)])
def test_sl2_enumeration_has_the_group_order(n, order):
  elements = cells.sl2_elements(n)
  assert len(elements) == len(set(elements)) == order == cells.sl2_order(n)
  assert elements[0] == (1, 0, 0, 1)
  for a, b, c, d in elements:
    assert (a * d - b * c) % n == 1
    assert all(0 <= v < n for v in (a, b, c, d))


@pytest.mark.parametrize('n', [3, 5])
def test_full_cayley_graph_is_a_connected_4_regular_graph(n):
  order = cells.sl2_order(n)
  assert cells.cayley_modulus(order) == n
  adj = cells.cayley_adjacency(order)  # nothing truncated
  np.testing.assert_array_equal(adj, adj.T)
  np.testing.assert_array_equal(np.diag(adj), 0.0)
  np.testing.assert_array_equal(adj.sum(1), 4.0)
  assert _connected(adj)


@pytest.mark.parametrize('num_nodes', [1, 2, 5, 16, 64, 100, 130])
def test_truncated_cayley_graph_is_connected_with_degree_at_most_4(
    num_nodes):
  adj = cells.cayley_adjacency(num_nodes)
  assert adj.shape == (num_nodes, num_nodes)
  assert adj.dtype == np.float32
  assert set(np.unique(adj)) <= {0.0, 1.0}
  np.testing.assert_array_equal(adj, adj.T)
  np.testing.assert_array_equal(np.diag(adj), 0.0)
  assert adj.sum(1).max() <= 4
  assert _connected(adj)
  n = cells.cayley_modulus(num_nodes)
  assert cells.sl2_order(n) >= num_nodes
  assert n == 2 or cells.sl2_order(n - 1) < num_nodes
  assert cells.cayley_adjacency(num_nodes) is adj  # cached
  assert not adj.flags.writeable
  index, mask = cells.cayley_neighbours(num_nodes)
  dense = np.zeros_like(adj)
  for i in range(num_nodes):
    dense[i, index[i][mask[i] > 0]] = 1.0
  np.testing.assert_array_equal(dense, adj)
  np.testing.assert_array_equal(mask.sum(1), adj.sum(1))


def test_cayley_graph_examples():
  np.testing.assert_array_equal(cells.cayley_adjacency(1), [[0.0]])
  np.testing.assert_array_equal(cells.cayley_adjacency(2), [[0, 1], [1, 0]])
  # n = 2: I, S, T, S T, T S in breadth-first order form the path
  # TS - T - I - S - ST.
  np.testing.assert_array_equal(cells.cayley_adjacency(5), [
      [0, 1, 1, 0, 0], [1, 0, 0, 1, 0], [1, 0, 0, 0, 1], [0, 1, 0, 0, 0],
      [0, 0, 1, 0, 0]])
  with pytest.raises(ValueError, match='num_nodes'):
    cells.cayley_adjacency(0)


CAYLEY_PARAMS = {'cay_send', 'cay_recv', 'cay_graph', 'cay_mlp_0',
                 'cay_norm_0', 'cay_mlp_1', 'cay_norm_1', 'upd_cay'}


@pytest.mark.parametrize('kind', sorted(cells.CELLS))
def test_cayley_off_is_the_cell_without_the_option(kind):
  args = graph()
  assert cells.CellConfig().cayley is False
  assert cells.CELLS[kind](out_size=D).config.cayley is False
  base = cells.CellConfig(kind=kind).build(D)
  off = cells.CellConfig(kind=kind, cayley=False).build(D)
  v_base = base.init(jax.random.PRNGKey(0), *args)
  v_off = off.init(jax.random.PRNGKey(0), *args)
  assert (jax.tree_util.tree_structure(v_off)
          == jax.tree_util.tree_structure(v_base))
  jax.tree_util.tree_map(np.testing.assert_array_equal, v_off, v_base)
  np.testing.assert_array_equal(off.apply(v_off, *args),
                                base.apply(v_base, *args))


def test_simple_cell_without_cayley_is_still_the_legacy_cell():
  args = graph()
  cell = cells.CellConfig(msg_mlp='simple', cayley=False).build(D)
  variables = cell.init(jax.random.PRNGKey(0), *args)
  assert _param_names(variables) == LEGACY_PARAMS
  np.testing.assert_allclose(cell.apply(variables, *args),
                             _legacy_mpnn(variables['params'], *args),
                             rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('kind', sorted(cells.CELLS))
def test_cayley_cell_adds_its_own_message_weights(kind):
  args = graph()
  cell = cells.CellConfig(kind=kind, cayley=True).build(D)
  variables = cell.init(jax.random.PRNGKey(0), *args)
  plain = cells.CellConfig(kind=kind).build(D).init(
      jax.random.PRNGKey(0), *args)
  params, plain_params = variables['params'], plain['params']
  if kind == 'triplet_mpnn':
    params, plain_params = params['pairwise'], plain_params['pairwise']
  assert set(params) == set(plain_params) | CAYLEY_PARAMS
  assert params['gate_hidden']['kernel'].shape == (F + D + D + D, D)
  out = cell.apply(variables, *args)
  assert out.shape == (B, N, D)
  assert bool(jnp.all(jnp.isfinite(out)))


def test_cayley_messages_are_used():
  args = graph()
  cell = cells.CellConfig(cayley=True).build(D)
  variables = cell.init(jax.random.PRNGKey(0), *args)
  base = cell.apply(variables, *args)

  def perturb(path, x):
    name = path[1].key
    if name.startswith('cay_'):
      return x + 0.5 * jax.random.normal(jax.random.PRNGKey(len(name)),
                                         x.shape)
    return x

  moved = jax.tree_util.tree_map_with_path(perturb, variables)
  out = cell.apply(moved, *args)
  assert float(jnp.max(jnp.abs(out - base))) > 1e-3


def test_cayley_messages_flow_only_along_cayley_edges():
  node, edge, gfts, adj, hidden = graph()
  adj = jnp.zeros_like(adj)  # no input edges: only the Cayley graph
  cell = cells.CellConfig(cayley=True).build(D)
  variables = cell.init(jax.random.PRNGKey(0), node, edge, gfts, adj, hidden)
  base = cell.apply(variables, node, edge, gfts, adj, hidden)
  cayley = cells.cayley_adjacency(N)
  for j in range(N):
    out = cell.apply(variables, node, edge, gfts, adj,
                     hidden.at[:, j].add(1.0))
    changed = np.asarray(jnp.any(jnp.abs(out - base) > 1e-6, axis=(0, 2)))
    expected = cayley[j] > 0
    expected[j] = True
    np.testing.assert_array_equal(changed, expected)


class _CayleyOnly(nn.Module):
  how: str

  @nn.compact
  def __call__(self, z, graph_fts):
    return cells.cayley_messages(z, graph_fts, 4, 'simple', self.how)


@pytest.mark.parametrize('how', cells.AGGREGATIONS)
def test_gathered_cayley_messages_match_the_dense_aggregate(how):
  num_nodes = 16
  z = jax.random.normal(jax.random.PRNGKey(1), (B, num_nodes, 6))
  gfts = jax.random.normal(jax.random.PRNGKey(2), (B, 3))
  module = _CayleyOnly(how)
  params = module.init(jax.random.PRNGKey(0), z, gfts)['params']
  out = module.apply({'params': params}, z, gfts)
  assert out.shape == (B, num_nodes, 4)

  def dense(name, x):
    return x @ params[name]['kernel'] + params[name]['bias']

  msgs = (dense('cay_send', z)[:, :, None] + dense('cay_recv', z)[:, None]
          + dense('cay_graph', gfts)[:, None, None])
  msgs = dense('cay_mlp', jax.nn.relu(msgs))
  adj = jnp.broadcast_to(cells.cayley_adjacency(num_nodes),
                         (B, num_nodes, num_nodes))
  np.testing.assert_allclose(out, cells.aggregate(msgs, adj, how),
                             rtol=1e-5, atol=1e-5)


def test_cayley_cell_runs_on_a_single_node():
  node, edge, gfts, adj, hidden = graph()
  node, edge, adj, hidden = (node[:, :1], edge[:, :1, :1], adj[:, :1, :1],
                             hidden[:, :1])
  cell = cells.CellConfig(cayley=True).build(D)
  args = (node, edge, gfts, adj, hidden)
  out = cell.apply(cell.init(jax.random.PRNGKey(0), *args), *args)
  assert out.shape == (B, 1, D)
  assert bool(jnp.all(jnp.isfinite(out)))


def test_authors_msg_mlp_is_layer_norm_relu_dense_twice():
  """The authors' order: messages end in a Dense layer (may be negative)."""
  import flax.linen as nn  # noqa: PLC0415

  class Mlp(nn.Module):
    kind: str

    @nn.compact
    def __call__(self, x):
      return cells.message_mlp(x, 6, self.kind)

  x = jax.random.normal(jax.random.PRNGKey(1), (3, 6)) * 2.0 + 0.5
  module = Mlp('authors')
  variables = module.init(jax.random.PRNGKey(0), x)
  p = variables['params']
  assert set(p) == {'msg_norm_0', 'msg_mlp_0', 'msg_norm_1', 'msg_mlp_1'}

  def norm(v, q):
    mean = v.mean(-1, keepdims=True)
    var = ((v - mean) ** 2).mean(-1, keepdims=True)
    return (v - mean) / jnp.sqrt(var + 1e-6) * q['scale'] + q['bias']

  want = x
  for i in range(2):
    want = jax.nn.relu(norm(want, p[f'msg_norm_{i}']))
    want = want @ p[f'msg_mlp_{i}']['kernel'] + p[f'msg_mlp_{i}']['bias']
  got = module.apply(variables, x)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  assert float(got.min()) < 0  # 'reference' ends in a ReLU: never negative.
  ref = Mlp('reference')
  assert float(ref.apply(ref.init(jax.random.PRNGKey(0), x), x).min()) >= 0


@pytest.mark.parametrize('kind', sorted(cells.CELLS))
def test_complete_graph_passes_messages_between_every_pair(kind):
  node, edge, gfts, adj, hidden = graph()
  eye = jnp.broadcast_to(jnp.eye(N), adj.shape)
  complete = cells.CellConfig(kind=kind, complete_graph=True).build(D)
  plain = cells.CellConfig(kind=kind).build(D)
  variables = plain.init(jax.random.PRNGKey(0), node, edge, gfts, eye, hidden)
  with_ones = plain.apply(variables, node, edge, gfts, jnp.ones_like(adj),
                          hidden)
  only_self = plain.apply(variables, node, edge, gfts, eye, hidden)
  got = complete.apply(variables, node, edge, gfts, eye, hidden)
  np.testing.assert_allclose(got, with_ones, rtol=1e-6, atol=1e-6)
  assert not np.allclose(got, only_self, atol=1e-4)


@pytest.mark.parametrize('kind', sorted(cells.CELLS))
@pytest.mark.parametrize('cayley', [False, True])
def test_bfloat16_compute_keeps_float32_parameters_and_state(kind, cayley):
  args = graph()
  f32 = cells.CellConfig(kind=kind, cayley=cayley).build(D)
  bf16 = cells.CellConfig(kind=kind, cayley=cayley,
                          compute_dtype='bfloat16').build(D)
  v32 = f32.init(jax.random.PRNGKey(0), *args)
  v16 = bf16.init(jax.random.PRNGKey(0), *args)
  # The same parameters, float32 in both.
  jax.tree_util.tree_map(np.testing.assert_array_equal, v16, v32)
  assert {x.dtype for x in jax.tree_util.tree_leaves(v16)} == {
      jnp.dtype(jnp.float32)}
  out32 = f32.apply(v32, *args)
  out16 = bf16.apply(v32, *args)
  assert out16.dtype == jnp.float32  # the state's dtype, not bfloat16
  # bfloat16 keeps 8 bits of mantissa: about 2-3 significant digits.
  err = float(jnp.max(jnp.abs(out16 - out32)))
  assert 0 < err < 0.1, err
  rel = float(jnp.linalg.norm(out16 - out32) / jnp.linalg.norm(out32))
  assert rel < 2e-2, rel


def test_bfloat16_cell_does_its_matmuls_in_bfloat16():
  args = graph()
  cell = cells.CellConfig(compute_dtype='bfloat16').build(D)
  variables = cell.init(jax.random.PRNGKey(0), *args)
  text = jax.jit(cell.apply).lower(variables, *args).as_text()
  dots = [line for line in text.splitlines() if 'dot_general' in line]
  assert dots and all('bf16' in line for line in dots), dots
  default = cells.CellConfig().build(D)
  text = jax.jit(default.apply).lower(variables, *args).as_text()
  assert 'bf16' not in text


def test_float32_compute_follows_the_inputs_dtype():
  """The default adds no casts: float64 inputs (the finite-difference
  tests) stay float64."""
  with jax.enable_x64(True):
    args = [a.astype(jnp.float64) for a in graph()]
    cell = cells.CellConfig().build(D)
    variables = cell.init(jax.random.PRNGKey(0), *args)
    assert cell.apply(variables, *args).dtype == jnp.float64


def test_unknown_compute_dtype_is_refused():
  with pytest.raises(ValueError, match="compute_dtype 'float16'"):
    cells.CellConfig(compute_dtype='float16')
