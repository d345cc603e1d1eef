"""experiments.readme_tables copies the report's tables into the READMEs."""

import pathlib
import shutil

import pytest

from experiments import readme_tables

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


def test_a_new_score_reaches_all_three_tables(repo):
  dear = repo / 'results' / 'dear_cpu'
  table = (dear / 'table.md').read_text()
  gaps = (dear / 'gaps.md').read_text()
  # minimum's NAR gains seeds: its cell changes in both report files.
  old_cell = '| 0.940 |'
  assert old_cell in table
  (dear / 'table.md').write_text(table.replace(
      '| minimum | nar | 0 | 1.000 | 0.940 |',
      '| minimum | nar | 0,1 | 1.000 ± 0.000 | 0.930 ± 0.010 |'))
  (dear / 'gaps.md').write_text(gaps.replace(
      '| 64 | minimum | dear | 0.950 ± 0.016 (seeds 0-2) | 0.940 (seed 0) |',
      '| 64 | minimum | dear | 0.950 ± 0.016 (seeds 0-2) | '
      '0.930 ± 0.010 (seeds 0, 1) |'))
  prose = (repo / 'results' / 'README.md').read_text().split('## Commands')[1]

  changed = readme_tables.synced(repo)

  assert set(changed) == {repo / 'README.md', repo / 'results' / 'README.md'}
  results = changed[repo / 'results' / 'README.md']
  assert '| minimum | nar | 0,1 | 1.000 ± 0.000 | 0.930 ± 0.010 |' in results
  assert ('| 64 | minimum | dear | 0.950 ± 0.016 (seeds 0-2) | '
          '0.930 ± 0.010 (seeds 0, 1) |') in results
  assert results.split('## Commands')[1] == prose
  summary = readme_tables.table_rows(changed[repo / 'README.md'],
                                     readme_tables.SUMMARY_HEADER)
  assert ['minimum', '0.950 ± 0.016 (seeds 0-2)',
          '0.930 ± 0.010 (seeds 0, 1)', '-', '-'] in summary
  # Writing the change leaves nothing stale.
  for path, text in changed.items():
    path.write_text(text)
  assert readme_tables.synced(repo) == {}


def test_unrecorded_commit_keeps_the_readmes_commit():
  old = [['bfs', 'nar', '0', 'x', 'x', 'x', 'x', 'x', '6d843ff']]
  table = ('| algorithm | model |\n|---|---|\n| bfs | nar | 0 | 1.0 | 1.0 |'
           ' - | - | - | - | - | - | - | 4101 | 5000 | ? |\n')
  (line,) = readme_tables.results_table(table, old)
  assert line.endswith('| 4101 | 6d843ff |')
  (line,) = readme_tables.results_table(table, [])
  assert line.endswith('| 4101 | ? |')


def test_algorithm_without_a_gap_line_is_refused():
  with pytest.raises(ValueError, match='no 64-node line for dfs'):
    readme_tables.summary_table('| 64 | bfs | dear | 1 | 1 |', ['dfs'])
