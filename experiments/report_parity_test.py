"""Tests of the parity table (ours against the reference, same graphs)."""

import json

import pytest

from experiments import intervals
from experiments import report_parity


def _ours(seed, score, tag='', model='dear', iterations=12.0):
  return {'algorithm': 'bellman_ford', 'model': model, 'seed': seed,
          'tag': tag, 'eval_sets': 'reference', 'checkpoint_step': 5000,
          'test_scores': {'64': {'pi': score, 'score': score}},
          'solver': {'64': {'iterations_mean': iterations}}}


def _theirs(seed, score, model='dear'):
  return {'implementation': 'reference', 'algorithm': 'bellman_ford',
          'model': model, 'seed': seed, 'train_steps': 5000,
          'test_size': 64, 'test_score': score, 'iterations_mean': 11.0}


def _write(root, sub, records):
  (root / sub).mkdir(parents=True, exist_ok=True)
  for i, record in enumerate(records):
    (root / sub / f'{i}.json').write_text(json.dumps(record))


def test_each_variant_is_compared_with_the_reference_by_welch(tmp_path):
  ours = [_ours(s, v) for s, v in enumerate((0.93, 0.94, 0.95))]
  ours += [_ours(0, 0.97, tag='rpos')]
  theirs = [_theirs(s, v) for s, v in enumerate((0.96, 0.97, 0.965))]
  _write(tmp_path, 'ours', ours)
  _write(tmp_path, 'reference', theirs)
  text = report_parity.build(tmp_path)
  table = [line for line in text.splitlines() if line.startswith('| bell')]
  assert len(table) == 2
  c = intervals.welch([0.93, 0.94, 0.95], [0.96, 0.97, 0.965])
  assert f'{c.difference:+.3f} [{c.low:+.3f}, {c.high:+.3f}]' in table[0]
  assert 'behind' in table[0] and '0.940 ± 0.010 (0,1,2)' in table[0]
  assert 'rpos' in table[1] and '1 seed: no interval' in table[1]
  assert '12.0 / 11.0' in table[0]


def test_a_model_without_reference_runs_says_so(tmp_path):
  _write(tmp_path, 'ours', [_ours(0, 0.9, model='nar')])
  _write(tmp_path, 'reference', [_theirs(0, 0.96)])
  assert 'no reference run' in report_parity.build(tmp_path)


def test_no_records_of_ours_build_nothing(tmp_path):
  _write(tmp_path, 'reference', [_theirs(0, 0.96)])
  assert report_parity.build(tmp_path) is None


def test_a_score_on_other_graphs_is_refused(tmp_path):
  record = _ours(0, 0.9)
  record['eval_sets'] = 'own'
  _write(tmp_path, 'ours', [record])
  with pytest.raises(ValueError, match="not scored on the reference's "
                     "graphs .eval_sets='own'"):
    report_parity.build(tmp_path)


def test_a_record_of_ours_among_the_reference_is_refused(tmp_path):
  _write(tmp_path, 'ours', [_ours(0, 0.9)])
  _write(tmp_path, 'reference', [_ours(1, 0.9)])
  with pytest.raises(ValueError, match='not the reference'):
    report_parity.build(tmp_path)


@pytest.mark.parametrize('sub,records', [
    # A run whose config lacked its variant's tag scores as the table
    # settings: its seed would be pooled twice.
    ('ours', [_ours(3, 0.948), _ours(3, 0.948), _ours(3, 0.95, tag='a')]),
    ('reference', [_theirs(2, 0.96), _theirs(2, 0.96)]),
])
def test_a_seed_twice_in_one_row_is_refused(tmp_path, sub, records):
  _write(tmp_path, 'ours', [_ours(0, 0.9)])
  _write(tmp_path, sub, records)
  with pytest.raises(ValueError, match=r'0\.json and 1\.json in .* are the '
                     r'same seed of one row'):
    report_parity.build(tmp_path)


def test_test_losses_are_compared_only_where_they_are_the_same_quantity(
    tmp_path):
  ours = [dict(_ours(s, 0.95), test_loss={'64': loss})
          for s, loss in enumerate((0.30, 0.40))]
  ours += [dict(_ours(s, 0.95, tag='edges'), test_loss={'64': loss},
                pointer_loss='edges') for s, loss in enumerate((0.10, 0.12))]
  theirs = [dict(_theirs(s, 0.96),
                 test_metrics={'test/loss/average_loss': loss})
            for s, loss in enumerate((0.09, 0.11))]
  _write(tmp_path, 'ours', ours)
  _write(tmp_path, 'reference', theirs)
  table = [line for line in report_parity.build(tmp_path).splitlines()
           if line.startswith('| bell')]
  assert table[0].endswith('| n/c / 0.100 |')  # CLRS's all-node loss
  assert table[1].endswith('| 0.110 / 0.100 |')  # the reference's loss
