"""Tests of the Flax message-passing cells."""

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
  gated = cells.GatedMPNNCell(out_size=D, gate_bias=-6.0)
  out = gated.apply(gated.init(jax.random.PRNGKey(0), *args), *args)
  rel_change = jnp.linalg.norm(out - hidden) / jnp.linalg.norm(hidden)
  assert float(rel_change) < 0.1
  ungated = cells.GatedMPNNCell(out_size=D, gated=False)
  out = ungated.apply(ungated.init(jax.random.PRNGKey(0), *args), *args)
  # Without gate the output is a LayerNorm'd candidate: zero mean per node.
  np.testing.assert_allclose(jnp.mean(out, -1), 0.0, atol=1e-5)


def test_bad_cell_config_is_refused():
  with pytest.raises(ValueError, match='unknown cell'):
    cells.CellConfig(kind='gat')
  with pytest.raises(ValueError, match='aggregation'):
    cells.CellConfig(aggregation='min')
