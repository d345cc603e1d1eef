"""experiments.rebuild_results rebuilds results/ and finds stale files."""

import json
import pathlib

import matplotlib.image

from experiments import rebuild_results
from experiments import report_iterations_test
from experiments import report_test
from experiments import run_files


def _root(tmp_path: pathlib.Path) -> pathlib.Path:
  """A repository with two READMEs that quote no table and the report
  copies of four runs."""
  (tmp_path / 'README.md').write_text('# x\n')
  runs = tmp_path / 'results' / 'dear_cpu' / 'runs'
  runs.mkdir(parents=True)
  (tmp_path / 'results' / 'README.md').write_text('# Results\n')
  for model, seed, score in (('dear', 0, 0.8), ('dear', 1, 0.7),
                             ('nar', 0, 0.6), ('nar', 1, 0.65)):
    run = report_test.fake_run(model, seed, score, None)
    (runs / run_files.copy_name(run)).write_text(json.dumps(run))
  return tmp_path


def test_rebuild_writes_then_finds_nothing_stale(tmp_path):
  root = _root(tmp_path)
  dear_cpu = root / 'results' / 'dear_cpu'
  printed = []
  written = rebuild_results.rebuild(root, check=False, log=printed.append)
  assert sorted(p.name for p in written) == [
      'accuracy_vs_size.png', 'gaps.md', 'iterations_vs_steps.png',
      'table.md']
  assert 'a positive difference means the row (DEAR) is ahead' in (
      dear_cpu / 'gaps.md').read_text()
  printed.clear()
  assert rebuild_results.rebuild(root, check=True, log=printed.append) == []
  assert printed[-1].endswith('are up to date')
  # A figure written again with other metadata but the same pixels is not
  # stale: figures are compared by their pixels.
  png = dear_cpu / 'accuracy_vs_size.png'
  before = png.read_bytes()
  matplotlib.image.imsave(png, matplotlib.image.imread(png),
                          metadata={'Software': 'another encoder'})
  assert png.read_bytes() != before
  assert rebuild_results.rebuild(root, check=True, log=printed.append) == []


def test_check_names_each_stale_file_and_exits_1(tmp_path, capsys):
  root = _root(tmp_path)
  dear_cpu = root / 'results' / 'dear_cpu'
  rebuild_results.rebuild(root, check=False, log=lambda line: None)
  gaps = dear_cpu / 'gaps.md'
  gaps.write_text(gaps.read_text().replace('+0.125', '+0.250', 1))
  assert '+0.250' in gaps.read_text()
  (dear_cpu / 'accuracy_vs_size.png').write_bytes(
      (dear_cpu / 'iterations_vs_steps.png').read_bytes())
  (dear_cpu / 'table.md').unlink()
  edited = {p: p.read_bytes() for p in dear_cpu.iterdir() if p.is_file()}

  assert rebuild_results.main(['--check', '--root', str(root)]) == 1
  out = capsys.readouterr()
  assert sorted(out.out.splitlines()) == [
      'stale: results/dear_cpu/accuracy_vs_size.png',
      'stale: results/dear_cpu/gaps.md',
      'stale: results/dear_cpu/table.md']
  assert 'python -m experiments.rebuild_results' in out.err
  # --check changed nothing; a rebuild mends all three.
  assert {p: p.read_bytes() for p in dear_cpu.iterdir()
          if p.is_file()} == edited
  assert rebuild_results.main(['--root', str(root)]) == 0
  assert rebuild_results.main(['--check', '--root', str(root)]) == 0


def test_allocator_table_is_the_scripts():
  # The committed table, rebuilt from its two records.
  results = rebuild_results.ROOT / 'results'
  default, tuned = (json.loads(
      (results / f'benchmark_allocator.{v}.json').read_text())
                    for v in ('default', 'tuned'))
  assert rebuild_results.allocator_markdown(
      default, tuned, rebuild_results.ALLOCATOR_SETTING) == (
          results / 'benchmark_allocator.md').read_text()


def test_iterations_table_is_built_from_its_records(tmp_path):
  folder = tmp_path / 'results' / 'iterations'
  record = report_iterations_test._record({'solver': 'anderson'},
                                          {'64': 0.9}, {'64': (9.0, 20, 1.0)})
  report_iterations_test._write(folder, {'anderson': record})
  written = rebuild_results.rebuild(tmp_path, check=False,
                                    log=lambda line: None)
  assert written == [folder / 'table.md']
  assert '| anderson |' in (folder / 'table.md').read_text()
  assert rebuild_results.rebuild(tmp_path, check=True,
                                 log=lambda line: None) == []
