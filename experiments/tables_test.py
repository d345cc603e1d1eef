"""experiments.tables: the one way the report modules write tables."""

from experiments import tables


def test_a_table_is_a_header_a_rule_and_one_line_per_row():
  lines = tables.table(['a', 'b'], [['1', '2'], ['3', '4']])
  assert lines == ['| a | b |', '|---|---|', '| 1 | 2 |', '| 3 | 4 |']
  assert tables.header(['a', 'b']) == lines[:2]
  assert tables.row(['x']) == '| x |'
  assert tables.text(lines[:2]) == '| a | b |\n|---|---|\n'


def test_cells_of_seeds():
  assert tables.mean_std([]) == '-'
  assert tables.mean_std([0.5]) == '0.500'
  assert tables.mean_std([1.0, 2.0], digits=1) == '1.5 ± 0.5'
  assert tables.seeds_text([3]) == 'seed 3'
  assert tables.seeds_text([0, 1, 2]) == 'seeds 0-2'
  assert tables.seeds_text([0, 1]) == 'seeds 0, 1'
  assert tables.seeds_text([0, 2, 3]) == 'seeds 0, 2, 3'
