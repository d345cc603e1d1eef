r"""Rebuilds every generated table and figure under ``results/`` from the
run records, or checks that the committed ones are what it builds.

  python -m experiments.rebuild_results          # rewrite what differs
  python -m experiments.rebuild_results --check  # exit 1 naming each stale

One command for what used to take several report entry points:

* ``results/dear_cpu/``: ``table.md``, ``gaps.md`` and the figures
  ``accuracy_vs_size.png``, ``iterations_vs_steps.png`` and
  ``learning_curves.png`` (``experiments.report`` on the run records in
  ``dear_cpu/runs/``); ``ablations.md`` (``experiments.ablation_report``
  on ``dear_cpu/ablations/``); ``budget.md`` (``experiments.budget_report``
  on ``dear_cpu/runs/`` and the 5,000-step snapshots in
  ``dear_cpu/steps5000/``, tag ``steps15k``);
* ``results/benchmark*.md`` from the ``.json`` beside each
  (``measure.speed.format_table``, as ``experiments.benchmark`` writes them)
  and ``benchmark_allocator.md`` from ``benchmark_allocator.default.json``
  and ``.tuned.json`` (:func:`allocator_markdown`, as
  ``results/allocator_benchmark.sh`` writes it);
* ``results/parity/table.md`` (``experiments.report_parity`` on the
  records in ``parity/reference/`` and ``parity/ours/``);
* ``results/iterations/table.md`` (``experiments.report_iterations`` on
  the evaluation records in ``iterations/``);
* the README tables that quote ``table.md`` and ``gaps.md``
  (``experiments.readme_tables``; a README that quotes none is left alone).

An output whose records are absent is not built (and not checked).
``results/smoke_200steps/`` is a record of a run whose results files were
not kept: nothing rebuilds it, and it is not checked.

Figures. Every figure is drawn by matplotlib's Agg backend and saved
without metadata (``report_figures.PNG_METADATA``: no ``Software`` version;
Agg's PNGs carry no date), so a figure's bytes are a function of what it
draws and of the matplotlib (with its bundled FreeType and DejaVu fonts)
that draws it. ``--check`` compares figures by their decoded pixels (shape
and every RGBA value, exactly), not their bytes, so a different zlib or
PNG encoder alone is not a difference, while a moved point is. Another
matplotlib version may draw text a pixel differently: then ``--check``
names the figures, and rebuilding and committing them is the fix (CI
installs the newest matplotlib, as the project's users do).
"""

from __future__ import annotations

# isort: split
from experiments import quiet  # noqa: F401  (first: before TensorFlow)

# isort: split
import argparse
import json
import pathlib
import shutil
import sys
import tempfile
from collections.abc import Sequence

from experiments import ablation_report
from experiments import budget_report
from experiments import readme_tables
from experiments import report
from experiments import report_iterations
from experiments import report_parity
from experiments import run_files

ROOT = pathlib.Path(__file__).resolve().parents[1]
#: The runs of the table, relative to ``results/``.
DEAR_CPU = 'dear_cpu'
PARITY = 'parity'
ITERATIONS = 'iterations'
#: The config tag of the longer runs of budget.md.
BUDGET_TAG = 'steps15k'
#: The benchmark records whose markdown is ``format_table`` of their JSON.
BENCHMARKS = ('benchmark', 'benchmark_train64', 'benchmark_allocator.default',
              'benchmark_allocator.tuned')
ALLOCATOR = 'benchmark_allocator'
#: The GLIBC_TUNABLES that benchmark_allocator.tuned.json was measured
#: with (the JSON does not record it; results/allocator_benchmark.sh takes
#: it from launch.sweep.ALLOCATOR_ENV when it measures).
ALLOCATOR_SETTING = 'glibc.malloc.hugetlb=1'

def allocator_markdown(default: dict, tuned: dict, setting: str) -> str:
  """``benchmark_allocator.md``: the median seconds per call of two
  ``experiments.benchmark`` records, glibc's defaults against
  ``GLIBC_TUNABLES=<setting>``, and the speed-up (default / tuned)."""
  lines = [
      f'Median seconds per call, glibc defaults against '
      f'GLIBC_TUNABLES={setting}, measured in one run of '
      '`results/allocator_benchmark.sh` (batch 32, latent 128, 16 nodes, one '
      'core). Speed-up = default / tuned.', '',
      '| algorithm | model | call | default s | tuned s | speed-up |',
      '| --- | --- | --- | --- | --- | --- |']
  for alg, models in default['algorithms'].items():
    for model, entry in models['models'].items():
      other = tuned['algorithms'][alg]['models'][model]
      calls = [('train step', entry['train_step']['median_s'],
                other['train_step']['median_s'])]
      calls += [(f'inference ({size})', entry['inference'][size]['median_s'],
                 other['inference'][size]['median_s'])
                for size in entry['inference']]
      for call, base, new in calls:
        lines.append(f'| {alg} | {model} | {call} | {base:.3f} | {new:.3f} | '
                     f'{base / new:.2f}x |')
  return '\n'.join(lines) + '\n'


def _build_dear_cpu(results: pathlib.Path, out: pathlib.Path,
                    log) -> dict[str, str]:
  """Builds dear_cpu's tables and figures into ``out``; returns the texts
  of table.md and gaps.md ('' where there are no runs)."""
  runs_dir = results / DEAR_CPU / 'runs'
  if not runs_dir.is_dir():
    return {}
  skipped: list[tuple[str, str]] = []
  runs = run_files.load_runs(str(runs_dir), skipped, run_folders_only=True)
  if skipped:
    log(run_files.skipped_summary(skipped))
  if not runs:
    return {}
  (out / DEAR_CPU).mkdir(parents=True, exist_ok=True)
  report.write_outputs(runs, str(out / DEAR_CPU))
  ablations = results / DEAR_CPU / 'ablations'
  if ablations.is_dir():
    found, _ = ablation_report.load(str(ablations))
    if found:
      (out / DEAR_CPU / 'ablations.md').write_text(
          ablation_report.markdown(found))
  snapshots = results / DEAR_CPU / 'steps5000'
  if snapshots.is_dir():
    shots, _ = budget_report.load_snapshots(str(snapshots))
    comparisons, _ = budget_report.rows(runs, shots, BUDGET_TAG)
    if comparisons:
      (out / DEAR_CPU / 'budget.md').write_text(
          budget_report.markdown(comparisons))
  return {name: (out / DEAR_CPU / name).read_text()
          for name in ('table.md', 'gaps.md')}


def _build_benchmarks(results: pathlib.Path, out: pathlib.Path) -> None:
  """Builds the benchmark tables whose JSON records are there."""
  present = [n for n in BENCHMARKS if (results / f'{n}.json').exists()]
  if present:
    from deq_clrs.measure import speed  # noqa: PLC0415 (slow)
    for name in present:
      record = json.loads((results / f'{name}.json').read_text())
      (out / f'{name}.md').write_text(
          speed.format_table(record) + '\n')
  pair = [results / f'{ALLOCATOR}.{v}.json' for v in ('default', 'tuned')]
  if all(p.exists() for p in pair):
    default, tuned = (json.loads(p.read_text()) for p in pair)
    (out / f'{ALLOCATOR}.md').write_text(
        allocator_markdown(default, tuned, ALLOCATOR_SETTING))


def _build_parity(results: pathlib.Path, out: pathlib.Path) -> None:
  """Builds ``parity/table.md`` where there are records of ours."""
  text = report_parity.build(results / PARITY)
  if text is not None:
    (out / PARITY).mkdir(parents=True, exist_ok=True)
    (out / PARITY / 'table.md').write_text(text)


def _build_iterations(results: pathlib.Path, out: pathlib.Path) -> None:
  """Builds ``iterations/table.md`` where there are records."""
  text = report_iterations.build(results / ITERATIONS)
  if text is not None:
    (out / ITERATIONS).mkdir(parents=True, exist_ok=True)
    (out / ITERATIONS / 'table.md').write_text(text)


def build(root: pathlib.Path, out: pathlib.Path, log=print
          ) -> dict[pathlib.Path, pathlib.Path | str]:
  """Builds every generated file of ``root``'s ``results/``.

  Args:
    root: the repository root.
    out: an empty folder, where the files are built.
    log: gets one line per kind of records skipped.

  Returns:
    target path under ``root`` -> the built file under ``out`` (or, for a
    README, its new text).
  """
  results = root / 'results'
  tables = _build_dear_cpu(results, out, log)
  _build_benchmarks(results, out)
  _build_parity(results, out)
  _build_iterations(results, out)
  built: dict[pathlib.Path, pathlib.Path | str] = {
      results / path.relative_to(out): path
      for path in sorted(out.rglob('*')) if path.is_file()}
  if tables:
    for readme, text in readme_tables.synced_texts(
        root, tables['table.md'], tables['gaps.md']).items():
      built[readme] = text
  return built


def _same_image(a: pathlib.Path, b: pathlib.Path) -> bool:
  """Whether two PNGs decode to the same pixels."""
  import matplotlib.image  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  try:
    x, y = matplotlib.image.imread(a), matplotlib.image.imread(b)
  except (OSError, ValueError, SyntaxError):
    return False
  return x.shape == y.shape and bool(np.array_equal(x, y))


def stale(built: dict[pathlib.Path, pathlib.Path | str]
          ) -> list[pathlib.Path]:
  """The targets whose committed file is missing or differs from what was
  built (figures by their pixels, everything else by its bytes)."""
  out = []
  for target, new in built.items():
    if isinstance(new, str):  # A README's new text: it differs.
      out.append(target)
    elif not target.exists():
      out.append(target)
    elif target.suffix == '.png':
      if not _same_image(target, new):
        out.append(target)
    elif target.read_bytes() != new.read_bytes():
      out.append(target)
  return out


def rebuild(root: pathlib.Path, check: bool, log=print) -> list[pathlib.Path]:
  """Builds ``root``'s generated files; with ``check`` changes nothing,
  otherwise writes those that differ. Returns the targets that differed
  (each named through ``log``)."""
  with tempfile.TemporaryDirectory() as tmp:
    built = build(root, pathlib.Path(tmp), log)
    differ = stale(built)
    for target in differ:
      name = target.relative_to(root) if target.is_relative_to(
          root) else target
      if check:
        log(f'stale: {name}')
        continue
      new = built[target]
      if isinstance(new, str):
        target.write_text(new)
      else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(new, target)
      log(f'updated: {name}')
  if not differ:
    log(f'{len(built)} generated files under {root / "results"} and the '
        f'READMEs are up to date')
  return differ


def main(argv: Sequence[str] | None = None) -> int:
  """The command line; returns the exit status (1: stale files found by
  ``--check``)."""
  parser = argparse.ArgumentParser(
      prog='python -m experiments.rebuild_results',
      description='Rebuild every generated file under results/ (and the '
      'README tables quoting them) from the run records.')
  parser.add_argument('--check', action='store_true',
                      help='change nothing; exit 1 naming each committed '
                      'file that differs from what this builds')
  parser.add_argument('--root', default=str(ROOT),
                      help='repository root holding results/')
  args = parser.parse_args(argv)
  differ = rebuild(pathlib.Path(args.root), args.check)
  if args.check and differ:
    print(f'{len(differ)} stale; rebuild with: python -m '
          f'experiments.rebuild_results', file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
