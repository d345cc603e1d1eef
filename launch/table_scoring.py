"""Scores the table's finished runs again, one evaluation at a time.

* :func:`eval_table` (``results/eval_table.sh``): the finished ``dear`` and
  ``nar`` runs of a runs folder (the table's, or the ablation's, whose runs
  are named ``<alg>-dear-<tag>-s<seed>``) at larger test sizes, each into
  its workdir's ``eval_results.json`` (which ``experiments.report`` merges
  into its row). Runs already scored, unfinished runs, ``nar_lt`` runs (up
  to 5N steps per graph: hours on one core at 128 nodes) and runs another
  process holds (the ``flock`` on ``<workdir>/.lock`` that the sweep
  worker takes) are skipped, so it can be rerun at any time.
* :func:`ablate_eval` (``results/ablate_eval.sh``): evaluation-only
  ablations: each finished (untagged) ``dear`` run's selected checkpoint
  scored again at 64 nodes with other solver settings
  (:data:`ABLATION_SETTINGS`), into ``<out>/<run>.<setting>.json`` (files
  already there are kept); ``experiments.ablation_report`` tables them.

Every evaluation is ``python -m experiments.evaluate`` pinned to one core
with one thread (``launch.sweep.ONE_CORE_ENV``) and the sweeps' malloc
setting (``launch.sweep.ALLOCATOR_ENV``) unless ``GLIBC_TUNABLES`` is set
to something else. The functions take the runner of a command as an
argument, so that tests check what would run without running it.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence

from launch import sweep as sweep_lib

#: ``<algorithm>-<model>[-<tag>]-s<seed>``: neither algorithm nor model
#: holds a dash.
RUN_NAME = re.compile(
    r'^(?P<algorithm>[^-]+)-(?P<model>[^-]+)(?:-(?P<tag>.+))?-s(?P<seed>\d+)$')
#: The models :func:`eval_table` scores.
EVAL_MODELS = ('dear', 'nar')
#: Setting name -> the ``experiments.evaluate`` flags it adds.
ABLATION_SETTINGS: dict[str, tuple[str, ...]] = {
    'default': (),
    'rel_tol0.01': ('--rel_tol=0.01',),
    'rel_tol0.001': ('--rel_tol=0.001',),
    'no_eval_noise': ('--nonoise_in_eval',),
    'phantom_in_eval': ('--phantom_in_eval',),
}
#: The settings :func:`ablate_eval` scores unless told others.
DEFAULT_SETTINGS = ('default', 'rel_tol0.01', 'no_eval_noise',
                    'phantom_in_eval')
#: The test size of the ablations.
ABLATION_SIZE = 64

#: ``(command, environment, log file) -> exit status``: runs one
#: evaluation with its output in the (truncated) log file.
Runner = Callable[[Sequence[str], Mapping[str, str], pathlib.Path], int]


@dataclasses.dataclass(frozen=True)
class RunName:
  """The parts of a run folder's name (:data:`RUN_NAME`)."""
  algorithm: str
  model: str
  tag: str | None
  seed: str


def parse_run_name(name: str) -> RunName | None:
  """The parts of ``name``, or None where it is not a run's name."""
  match = RUN_NAME.match(name)
  return RunName(**match.groupdict()) if match else None


def run_subprocess(command: Sequence[str], env: Mapping[str, str],
                   log_path: pathlib.Path) -> int:
  """Runs ``command`` from the repository root, its output in ``log_path``
  (truncated first); returns its exit status (negative: the signal)."""
  with open(log_path, 'w') as log:
    return subprocess.run(list(command), cwd=sweep_lib.REPO_ROOT,
                          env=dict(env), stdout=log,
                          stderr=subprocess.STDOUT, check=False).returncode


def evaluation_env(core: int, environ: Mapping[str, str] | None = None
                   ) -> dict[str, str]:
  """The environment of an evaluation pinned to ``core``.

  An empty ``GLIBC_TUNABLES`` counts as unset (the sweeps' setting).
  """
  environ = os.environ if environ is None else environ
  env = sweep_lib.job_env(core, environ)
  env['GLIBC_TUNABLES'] = (environ.get('GLIBC_TUNABLES') or
                           sweep_lib.ALLOCATOR_ENV['GLIBC_TUNABLES'])
  return env


def evaluation_command(workdir: pathlib.Path, flags: Sequence[str],
                       core: int) -> list[str]:
  """``python -m experiments.evaluate`` of ``workdir``, pinned to ``core``."""
  return sweep_lib.pinned_command(
      [sys.executable, '-m', 'experiments.evaluate', f'--workdir={workdir}',
       *flags], core)


def _run_folders(runs_dir: str | os.PathLike
                 ) -> Iterator[tuple[pathlib.Path, RunName]]:
  """The finished run folders of ``runs_dir``, by name, with their parts."""
  runs_dir = pathlib.Path(runs_dir)
  if not runs_dir.is_dir():
    raise FileNotFoundError(f'no runs folder at {runs_dir}')
  for workdir in sorted(runs_dir.iterdir()):
    name = parse_run_name(workdir.name)
    if (name is not None and workdir.is_dir()
        and (workdir / 'results.json').is_file()):
      yield workdir, name


def runs_to_score(runs_dir: str | os.PathLike,
                  algorithms: Sequence[str] | None = None
                  ) -> list[pathlib.Path]:
  """The finished ``dear`` and ``nar`` runs (any tag) of ``runs_dir`` that
  have no ``eval_results.json`` yet, of ``algorithms`` (default: all)."""
  return [workdir for workdir, name in _run_folders(runs_dir)
          if name.model in EVAL_MODELS
          and (not algorithms or name.algorithm in algorithms)
          and not (workdir / 'eval_results.json').exists()]


@dataclasses.dataclass
class ScoreReport:
  """What :func:`eval_table` did with each run it picked (workdirs)."""
  scored: list[str] = dataclasses.field(default_factory=list)
  held: list[str] = dataclasses.field(default_factory=list)
  failed: list[str] = dataclasses.field(default_factory=list)


def killed(returncode: int) -> bool:
  """Whether an evaluation was killed by SIGKILL (most often the kernel's
  out-of-memory killer); 137 is how a shell reports that."""
  return returncode in (-signal.SIGKILL, 128 + signal.SIGKILL)


def not_scored_reason(workdir: pathlib.Path, returncode: int) -> str:
  """Why the evaluation of ``workdir`` that ended with ``returncode``
  scored nothing, in words."""
  if killed(returncode):
    return ('killed by SIGKILL: most often out of memory; try a smaller '
            '--eval_batch_size (EVAL_BATCH)')
  return f'{sweep_lib.exit_reason(returncode)}; see {workdir / "eval.log"}'


def _score_held(workdir: pathlib.Path, command: Sequence[str],
                env: Mapping[str, str], run: Runner) -> int | None:
  """Runs ``command`` under the workdir's lock; None where another process
  holds it (its ``eval.log`` is then left alone)."""
  with open(workdir / '.lock', 'a') as lock:
    try:
      fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      return None
    return run(command, env, workdir / 'eval.log')


def eval_table(runs_dir: str | os.PathLike, *,
               sizes: Sequence[int] = (128,), data_dir: str | None = None,
               eval_batch_size: int | None = None,
               algorithms: Sequence[str] | None = None, core: int = 0,
               run: Runner = run_subprocess,
               log: Callable[[str], None] = print) -> ScoreReport:
  """Scores the runs of :func:`runs_to_score` at ``sizes``, one at a time
  on ``core``, each into its ``eval_results.json``.

  Args:
    runs_dir: the folder of run workdirs.
    sizes: the test sizes (``experiments.evaluate --test_sizes``).
    data_dir: the dataset cache, if any.
    eval_batch_size: graphs per evaluation call (a smaller one for runs
      whose default batch does not fit in memory at that size).
    algorithms: score these algorithms only (default: all).
    core: the CPU core of every evaluation.
    run: the runner of each evaluation (:func:`run_subprocess`).
    log: called with one line per run scored or not scored.

  Raises:
    FileNotFoundError: ``runs_dir`` is not a folder.
  """
  flags = [f'--test_sizes={",".join(str(s) for s in sizes)}']
  if data_dir:
    flags.append(f'--data_dir={data_dir}')
  if eval_batch_size:
    flags.append(f'--eval_batch_size={eval_batch_size}')
  env = evaluation_env(core)
  report = ScoreReport()
  for workdir in runs_to_score(runs_dir, algorithms):
    log(f'scoring {workdir}')
    returncode = _score_held(workdir, evaluation_command(workdir, flags, core),
                             env, run)
    if returncode is None:
      log(f'not scored: {workdir} (another process holds it)')
      report.held.append(str(workdir))
    elif returncode:
      line = f'not scored: {workdir} ({not_scored_reason(workdir, returncode)})'
      log(line)
      if killed(returncode):  # The killer leaves no line of its own.
        with open(workdir / 'eval.log', 'a') as eval_log:
          eval_log.write(line + '\n')
      report.failed.append(str(workdir))
    else:
      report.scored.append(str(workdir))
  return report


def check_settings(settings: Sequence[str]) -> None:
  """Raises ValueError naming the first setting not in
  :data:`ABLATION_SETTINGS` (and the known ones)."""
  for name in settings:
    if name not in ABLATION_SETTINGS:
      raise ValueError(f'unknown setting: {name} (known: '
                       f'{", ".join(ABLATION_SETTINGS)})')


def ablation_runs(runs_dir: str | os.PathLike,
                  seeds: Sequence[str] | None = None,
                  algorithms: Sequence[str] | None = None
                  ) -> list[pathlib.Path]:
  """The finished untagged ``dear`` runs of ``runs_dir`` of ``seeds`` and
  ``algorithms`` (default: all)."""
  return [workdir for workdir, name in _run_folders(runs_dir)
          if name.model == 'dear' and name.tag is None
          and (not seeds or name.seed in {str(s) for s in seeds})
          and (not algorithms or name.algorithm in algorithms)]


def ablate_eval(runs_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
                settings: Sequence[str] = DEFAULT_SETTINGS,
                seeds: Sequence[str] | None = None,
                algorithms: Sequence[str] | None = None,
                data_dir: str | None = None, core: int = 0,
                run: Runner = run_subprocess,
                log: Callable[[str], None] = print) -> list[str]:
  """Scores each run of :func:`ablation_runs` at 64 nodes with each of
  ``settings``, into ``<out_dir>/<run>.<setting>.json``, skipping files
  already there; each evaluation's output goes to
  ``<tmp>/ablate_eval.<run>.<setting>.log``.

  Returns:
    The files written.

  Raises:
    ValueError: an unknown setting, before anything is scored.
    FileNotFoundError: ``runs_dir`` is not a folder.
  """
  check_settings(settings)
  runs = ablation_runs(runs_dir, seeds, algorithms)
  out_dir = pathlib.Path(out_dir)
  out_dir.mkdir(parents=True, exist_ok=True)
  base = [f'--test_sizes={ABLATION_SIZE}']
  if data_dir:
    base.append(f'--data_dir={data_dir}')
  env = evaluation_env(core)
  written = []
  for workdir in runs:
    for setting in settings:
      output = out_dir / f'{workdir.name}.{setting}.json'
      if output.exists():
        continue
      log(f'scoring {workdir.name} with {setting}')
      log_path = (pathlib.Path(tempfile.gettempdir()) /
                  f'ablate_eval.{workdir.name}.{setting}.log')
      flags = [*base, *ABLATION_SETTINGS[setting], f'--output={output}']
      if run(evaluation_command(workdir, flags, core), env, log_path):
        log(f'failed: {workdir.name} {setting} (see {log_path})')
      else:
        written.append(str(output))
  return written
