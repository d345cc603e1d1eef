"""experiments.readme_tables copies the report's tables into the READMEs."""

import pathlib
import shutil

import pytest

from experiments import readme_tables
from experiments import tables

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(name='repo')
def _repo(tmp_path: pathlib.Path) -> pathlib.Path:
  """A copy of the two READMEs and the report's two tables."""
  (tmp_path / 'results' / 'dear_cpu').mkdir(parents=True)
  shutil.copy(ROOT / 'README.md', tmp_path / 'README.md')
  shutil.copy(ROOT / 'results' / 'README.md', tmp_path / 'results')
  for name in ('table.md', 'gaps.md'):
    shutil.copy(ROOT / 'results' / 'dear_cpu' / name,
                tmp_path / 'results' / 'dear_cpu' / name)
  return tmp_path


def test_committed_readmes_match_the_report():
  assert readme_tables.synced(ROOT) == {}


def _with_cell(text: str, row_start: tuple[str, ...], column: int,
               value: str) -> str:
  """``text`` with cell ``column`` of its one table row whose first cells
  are ``row_start`` set to ``value``."""
  lines, hits = text.splitlines(keepends=True), 0
  for i, line in enumerate(lines):
    if not line.startswith('|'):
      continue
    cells = readme_tables.split_row(line)
    if tuple(cells[:len(row_start)]) == row_start:
      cells[column] = value
      lines[i] = tables.row(cells) + '\n'
      hits += 1
  assert hits == 1, (row_start, hits)
  return ''.join(lines)


def test_a_new_score_reaches_all_three_tables(repo):
  dear = repo / 'results' / 'dear_cpu'
  # minimum's NAR gains seeds: its cell changes in both report files (to a
  # value no table holds, whatever the runs in so far).
  new = '0.123 ± 0.004 (seeds 0, 1)'
  (dear / 'table.md').write_text(_with_cell(
      (dear / 'table.md').read_text(), ('minimum', 'nar'), 4, '0.123 ± 0.004'))
  (dear / 'gaps.md').write_text(_with_cell(
      (dear / 'gaps.md').read_text(), ('64', 'minimum', 'dear'), 4, new))
  prose = (repo / 'results' / 'README.md').read_text().split('## Commands')[1]

  changed = readme_tables.synced(repo)

  assert set(changed) == {repo / 'README.md', repo / 'results' / 'README.md'}
  results = changed[repo / 'results' / 'README.md']
  rows = readme_tables.table_rows(results, readme_tables.RESULTS_HEADER)
  assert [r[4] for r in rows if r[:2] == ['minimum', 'nar']] == [
      '0.123 ± 0.004']
  gaps = readme_tables.table_rows(results, readme_tables.GAPS_HEADER)
  assert [r[4] for r in gaps if r[:3] == ['64', 'minimum', 'dear']] == [new]
  assert results.split('## Commands')[1] == prose
  summary = readme_tables.table_rows(changed[repo / 'README.md'],
                                     readme_tables.SUMMARY_HEADER)
  assert [r[2] for r in summary if r[0] == 'minimum'] == [new]
  # Writing the change leaves nothing stale.
  for path, text in changed.items():
    path.write_text(text)
  assert readme_tables.synced(repo) == {}


def _bfs_nar_code(code: str, old: list[list[str]]) -> str:
  """The code cell results_table writes for a bfs nar row recorded as
  ``code``, given the README's rows ``old``."""
  table = ('| algorithm | model |\n|---|---|\n| bfs | nar | 0 | 1.0 | 1.0 |'
           f' - | - | - | - | - | - | - | 4101 | 5000 | {code} |\n')
  (line,) = readme_tables.results_table(table, old)
  return line.split('|')[-2].strip()


def test_unrecorded_commit_keeps_the_readmes_commit():
  old = [['bfs', 'nar', '0', 'x', 'x', 'x', 'x', 'x', '6d843ff']]
  assert _bfs_nar_code('?', old) == '6d843ff'
  assert _bfs_nar_code('?', []) == '?'
  # A later seed adds its recorded commit to the cell: the README's commit
  # for the first seed stays in place of the report's '?'.
  assert _bfs_nar_code('?,65b344c', old) == '6d843ff,65b344c'
  # Two '?'s and one named commit: nothing tells which is which.
  assert _bfs_nar_code('?,?,65b344c', old) == '?,?,65b344c'


def test_algorithm_without_a_gap_line_is_refused():
  with pytest.raises(ValueError, match='no 64-node line for dfs'):
    readme_tables.summary_table(
        '| test size | algorithm | row |\n|---|---|---|\n'
        '| 64 | bfs | dear | 1 | 1 |\n', ['dfs'])


def test_a_readme_without_a_quoted_table_is_left_alone(repo):
  # A README that quotes no table of the report (it cites the generated
  # file instead) is not refused, and not changed.
  (repo / 'README.md').write_text('# deq_clrs\n\nSee results/.\n')
  (repo / 'results' / 'README.md').write_text('# Results\n')
  assert readme_tables.synced(repo) == {}
