"""Sweeps as data, their jobs, and submission through submitit.

A sweep file is a Python file with ``get_sweep() -> list[dict]``: each dict
holds the flags of one ``python -m experiments.train`` run (without
``--workdir``, which the sweep assigns). Every job gets its own workdir under
the sweep's root, so a job that is preempted or requeued restarts the same
command, which resumes from the last checkpoint in that workdir.

Submission goes through submitit: on SLURM the jobs become one job array;
the local executor runs the same jobs on this machine. :func:`run_worker`
runs them here instead, one after another in the sweep's order, skipping
finished ones and those another worker holds (a lock per workdir), so that
several workers, each pinned to one core, can share one sweep.

A sweep is data: the runs and their flags, including per-run overrides
(``config.<field>``); :func:`select` narrows it and :func:`with_flags`
adds flags to every run (e.g. ``data_dir``).
"""

from __future__ import annotations

import dataclasses
import fcntl
import importlib.util
import json
import os
import pathlib
import signal
import subprocess
import sys
from typing import Any
from typing import Callable
from typing import Mapping
from typing import Sequence

import submitit

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
# submitit's executors; 'worker' runs the jobs here (run_worker).
SUBMITIT_EXECUTORS = ('slurm', 'local')
EXECUTORS = SUBMITIT_EXECUTORS + ('worker',)
# Environment of a job pinned to one core: one thread everywhere.
ONE_CORE_ENV = {'OMP_NUM_THREADS': '1',
                'XLA_FLAGS': '--xla_cpu_multi_thread_eigen=false',
                'TF_CPP_MIN_LOG_LEVEL': '3'}
# Environment of every job. glibc's malloc serves XLA:CPU's large buffers
# (a training step's activations: gigabytes for a step-by-step model on a
# long trajectory) with fresh mmaps and unmaps them when freed, so every step
# page-faults them in again 4 KiB at a time. Asking malloc for transparent
# huge pages cuts those faults about 24x and most training steps get faster
# (docs/performance.md: measured there). It changes no number computed.
# glibc reads it when a process starts; other C libraries ignore it; a value
# already set is kept.
ALLOCATOR_ENV = {'GLIBC_TUNABLES': 'glibc.malloc.hugetlb=1'}


@dataclasses.dataclass(frozen=True)
class Job:
  """One training run of a sweep.

  Attributes:
    name: unique, filesystem-safe name (the workdir's name).
    flags: ``experiments.train`` flags, e.g. ``{'algorithm': 'bfs'}``.
  """
  name: str
  flags: dict[str, Any]

  def workdir(self, root: str | os.PathLike) -> pathlib.Path:
    return pathlib.Path(root) / self.name

  def finished(self, root: str | os.PathLike) -> bool:
    """Whether the run has written its ``results.json``."""
    return (self.workdir(root) / 'results.json').exists()

  def train_args(self, root: str | os.PathLike) -> list[str]:
    """The ``experiments.train`` flags of this job, ``--workdir`` last."""
    return [*(f'--{k}={_flag_value(v)}' for k, v in sorted(self.flags.items())),
            f'--workdir={self.workdir(root)}']

  def command(self, root: str | os.PathLike) -> list[str]:
    """The command line that runs (or resumes) this job."""
    return [sys.executable, '-m', 'experiments.train', *self.train_args(root)]


def _flag_value(value: Any) -> str:
  if isinstance(value, (list, tuple)):
    return ','.join(str(v) for v in value)
  return str(value)


def job_name(flags: dict[str, Any]) -> str:
  """``algorithm-model-sSEED`` plus any other flags, filesystem-safe."""
  parts = [str(flags.get('algorithm', 'alg')), str(flags.get('model', 'model')),
           f's{flags.get("seed", 0)}']
  return '-'.join(parts)


def load_sweep(path: str | os.PathLike) -> list[Job]:
  """Reads a sweep file and returns its jobs (names must be unique)."""
  path = pathlib.Path(path)
  if not path.is_file():
    raise FileNotFoundError(f'no sweep file at {path}')
  spec = importlib.util.spec_from_file_location(f'sweep_{path.stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  if not hasattr(module, 'get_sweep'):
    raise ValueError(f'{path} defines no get_sweep() function')
  runs = module.get_sweep()
  jobs = []
  for flags in runs:
    if 'workdir' in flags:
      raise ValueError(f'{path}: a sweep assigns workdirs itself; remove '
                       f'"workdir" from {flags}')
    jobs.append(Job(name=flags.pop('name', None) or job_name(flags),
                    flags=dict(flags)))
  names = [j.name for j in jobs]
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise ValueError(f'{path}: duplicate job names {duplicates}; give those '
                     'runs a "name"')
  return jobs


class TrainJob(submitit.helpers.Checkpointable):
  """Runs one job's command; on preemption submitit requeues it as is.

  Requeueing is safe because the command resumes from the last checkpoint in
  the job's workdir (``experiments.train`` does that on its own).
  """

  def __init__(self, job: Job, root: str):
    self.job = job
    self.root = str(root)

  def __call__(self) -> str:
    workdir = self.job.workdir(self.root)
    returncode = run_job(self.job.command(self.root), workdir)
    if returncode:
      raise RuntimeError(f'job {self.job.name} failed '
                         f'({exit_reason(returncode)}); see '
                         f'{workdir / "job.log"}')
    return str(workdir / 'results.json')


def run_job(command: Sequence[str], workdir: pathlib.Path,
            cpu: int | None = None) -> int:
  """Runs a job's command from the repository root; returns its status.

  Output is appended to ``<workdir>/job.log``. With ``cpu`` the command
  runs pinned to that core, with one thread (:data:`ONE_CORE_ENV`). Every
  command gets :data:`ALLOCATOR_ENV` unless the environment sets it.
  """
  workdir.mkdir(parents=True, exist_ok=True)
  env = job_env(cpu)
  command = list(command) if cpu is None else pinned_command(command, cpu)
  with open(workdir / 'job.log', 'a') as log:
    proc = subprocess.run(command, cwd=REPO_ROOT, env=env, stdout=log,
                          stderr=subprocess.STDOUT, check=False)
    if proc.returncode < 0:  # A signal leaves no line of its own in the log.
      log.write(f'job stopped: {exit_reason(proc.returncode)}\n')
  return proc.returncode


def exit_reason(returncode: int) -> str:
  """Says in words why a job's process ended with ``returncode``.

  A negative code is the signal that killed it (Python's convention). A
  SIGKILL that nobody sent by hand is usually the kernel's out-of-memory
  killer, which leaves no trace in the job's own output, so that is said.
  """
  if returncode >= 0:
    return f'exit code {returncode}'
  try:
    name = signal.Signals(-returncode).name
  except ValueError:
    name = f'signal {-returncode}'
  reason = f'killed by {name}'
  if -returncode == signal.SIGKILL:
    reason += (': if no one killed it by hand, the host ran out of memory '
               "(the kernel's out-of-memory killer; `dmesg` says)")
  return reason


_PIN_AND_EXEC = ('import os, sys; os.sched_setaffinity(0, {int(sys.argv[1])}); '
                 'os.execvp(sys.argv[2], sys.argv[2:])')


def repo_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
  """``environ`` (default ``os.environ``) with the repository first on
  ``PYTHONPATH``, so that ``python -m launch...`` runs from anywhere."""
  env = dict(os.environ if environ is None else environ)
  env['PYTHONPATH'] = os.pathsep.join(
      [str(REPO_ROOT)] + [p for p in [env.get('PYTHONPATH')] if p])
  return env


def job_env(cpu: int | None = None,
            environ: Mapping[str, str] | None = None) -> dict[str, str]:
  """The environment of a job's process.

  ``environ`` (default ``os.environ``) with :data:`ALLOCATOR_ENV` where it
  does not set those, the repository first on ``PYTHONPATH`` and, with
  ``cpu``, :data:`ONE_CORE_ENV` (one thread everywhere).
  """
  env = repo_env({**ALLOCATOR_ENV,
                  **(os.environ if environ is None else environ)})
  if cpu is not None:
    env.update(ONE_CORE_ENV)
  return env


def pinned_command(command: Sequence[str], cpu: int) -> list[str]:
  """``command`` run pinned to core ``cpu``.

  A small exec wrapper pins it (no ``preexec_fn``: forking a multithreaded
  parent, such as one that runs JAX, can deadlock), so the command's own
  process is the one pinned, with no process of ours in between.
  """
  return [sys.executable, '-c', _PIN_AND_EXEC, str(cpu), *command]


def select(jobs: Sequence[Job], only: Mapping[str, Sequence[Any]]
           ) -> list[Job]:
  """The jobs whose flag ``name`` is one of ``only[name]``, for every name.

  Values compare as strings (``{'seed': ['0']}`` keeps ``seed=0``); a job
  without the flag is dropped. The sweep's order is kept.

  Raises:
    ValueError: a name no job has, or a value no job has for its name (a
      typo that would otherwise select nothing, or less than meant,
      without a word), naming what the jobs have.
  """
  wanted = {name: {str(v) for v in values} for name, values in only.items()}
  for name, values in wanted.items():
    present = {str(job.flags[name]) for job in jobs if name in job.flags}
    if not present:
      names = sorted({n for job in jobs for n in job.flags})
      raise ValueError(f'--only={name}=...: no job of the sweep has the flag '
                       f'{name}; its flags are: {", ".join(names)}')
    missing = sorted(values - present)
    if missing:
      raise ValueError(
          f'--only={name}={",".join(sorted(values))}: no job of the sweep '
          f'has {name}={",".join(missing)}; its values: '
          f'{", ".join(sorted(present, key=_natural))}')
  return [job for job in jobs
          if all(name in job.flags and str(job.flags[name]) in values
                 for name, values in wanted.items())]


def _natural(text: str) -> tuple[int, float | str]:
  """Sorts numbers by value before other text (``2`` before ``10``)."""
  try:
    return (0, float(text))
  except ValueError:
    return (1, text)


def with_flags(jobs: Sequence[Job], flags: Mapping[str, Any]) -> list[Job]:
  """The jobs with ``flags`` added to (or replacing) each job's flags.

  Names stay: a run's workdir does not depend on these flags (use them for
  settings that may change on a rerun, such as ``data_dir``).
  """
  return [Job(job.name, {**job.flags, **flags}) for job in jobs]


def job_config(job: Job) -> dict[str, Any] | None:
  """The config ``experiments.train`` would give ``job``, as a plain dict.

  The job's command line is parsed by the flags ``experiments.train``
  defines (``experiments.cli.define_train_flags``), in flag values of their
  own, so the config is built as the run will build it. None where the
  command line does not parse (an unknown flag or field, a value of the
  wrong type), so that the job matches no run.
  """
  # Loading a config imports CLRS (TensorFlow): quietly, as the entry
  # points do.
  # pylint: disable=import-outside-toplevel
  from absl import flags as absl_flags

  from experiments import cli
  from experiments import quiet  # noqa: F401
  # pylint: enable=import-outside-toplevel
  argv = ['experiments.train', *job.train_args('.')]
  values = absl_flags.FlagValues()
  try:
    train_flags = cli.define_train_flags(values, sys_argv=argv)
    values(argv)
    return train_flags.config().to_dict()
  except (absl_flags.Error, AttributeError, KeyError, TypeError, ValueError):
    return None


def finished_in(jobs: Sequence[Job], done_dir: str | os.PathLike
                ) -> dict[str, str]:
  """The jobs that already have a finished run in ``done_dir``.

  ``done_dir`` holds results files of ``experiments.train`` runs, such as
  the copies ``experiments.report`` keeps (``results/dear_cpu/runs``), which
  outlive the run folders. A job counts as finished there when a run has
  its algorithm, model (and tag), seed and config, up to the bookkeeping
  fields that change nothing learned (``data_dir``, ``test_sizes``, ...).

  Returns:
    ``{job name: path of its run's results file}``.
  """
  from experiments import run_files  # pylint: disable=import-outside-toplevel
  runs = {}
  for run in run_files.load_runs(str(done_dir)):
    runs.setdefault(run_files.identity(run), run['_path'])
  found = {}
  for job in jobs:
    config = job_config(job)
    if config is None:
      continue
    key = run_files.identity({'algorithm': config.get('algorithm'),
                              'model': config.get('model'),
                              'seed': config.get('seed'), 'config': config})
    if key in runs:
      found[job.name] = runs[key]
  return found


@dataclasses.dataclass
class WorkerReport:
  """What :func:`run_worker` did with each job, by name, in order.

  Attributes:
    finished: had a ``results.json`` already.
    held: locked by another worker.
    ran: ran to a ``results.json`` here.
    failed: ran here and stopped without one (see its ``job.log``).
  """
  finished: list[str] = dataclasses.field(default_factory=list)
  held: list[str] = dataclasses.field(default_factory=list)
  ran: list[str] = dataclasses.field(default_factory=list)
  failed: list[str] = dataclasses.field(default_factory=list)


def run_worker(jobs: Sequence[Job], root: str | os.PathLike, *,
               cpu: int | None = None,
               command: Callable[[Job, str], Sequence[str]] | None = None,
               log: Callable[[str], None] = print) -> WorkerReport:
  """Runs (or resumes) a sweep's jobs here, one at a time, in order.

  A job with a ``results.json`` is skipped; a job whose workdir lock
  (``<workdir>/.lock``, an exclusive ``flock``, the lock of ``flock(1)``)
  another process holds is left to it; every other job runs to its end
  under that lock (its command resumes from the workdir's last
  checkpoint). A failed job is reported and the worker goes on. So any
  number of workers can run the same sweep at once, and a killed worker
  is restarted by running it again.

  Args:
    jobs: the jobs, in the order to run them.
    root: the sweep's root (one workdir per job).
    cpu: pin every job to this core, with one thread.
    command: ``(job, root) -> argv`` (default :meth:`Job.command`).
    log: called with one line per job.

  Returns:
    A :class:`WorkerReport`.
  """
  command = command or (lambda job, root: job.command(root))
  report = WorkerReport()
  for job in jobs:
    workdir = job.workdir(root)
    if job.finished(root):
      report.finished.append(job.name)
      continue
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / '.lock', 'a') as lock:
      try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
      except BlockingIOError:
        log(f'held by another worker: {workdir}')
        report.held.append(job.name)
        continue
      if job.finished(root):  # finished while we looked
        report.finished.append(job.name)
        continue
      log(f'running {job.name} in {workdir}')
      returncode = run_job(command(job, str(root)), workdir, cpu)
    if returncode == 0 and job.finished(root):
      report.ran.append(job.name)
    else:
      log(f'not finished: {workdir} ({exit_reason(returncode)}; see '
          f'{workdir / "job.log"})')
      report.failed.append(job.name)
  return report


def make_executor(kind: str, folder: str | os.PathLike, *,
                  timeout_min: int = 60, partition: str | None = None,
                  gpus_per_node: int = 0, cpus_per_task: int = 2,
                  array_parallelism: int = 16,
                  slurm_args: dict[str, Any] | None = None
                  ) -> submitit.Executor:
  """A submitit executor for ``'slurm'`` or ``'local'``."""
  if kind not in SUBMITIT_EXECUTORS:
    raise ValueError(f'unknown executor {kind!r}; expected one of '
                     f'{list(SUBMITIT_EXECUTORS)} (a worker runs without one)')
  executor = submitit.AutoExecutor(folder=str(folder), cluster=kind)
  params: dict[str, Any] = dict(timeout_min=timeout_min,
                                cpus_per_task=cpus_per_task,
                                gpus_per_node=gpus_per_node,
                                tasks_per_node=1, nodes=1)
  if kind == 'slurm':
    params.update(slurm_array_parallelism=array_parallelism,
                  # Ask SLURM to signal before the time limit so submitit
                  # can requeue the job, and allow requeueing.
                  slurm_signal_delay_s=120,
                  slurm_additional_parameters={'requeue': True,
                                               **(slurm_args or {})})
    if partition:
      params['slurm_partition'] = partition
  executor.update_parameters(**params)
  return executor


def submit(jobs: Sequence[Job], root: str | os.PathLike,
           executor: submitit.Executor) -> list[submitit.Job]:
  """Submits every job (one SLURM job array) and writes ``jobs.json``."""
  root = pathlib.Path(root)
  root.mkdir(parents=True, exist_ok=True)
  with executor.batch():
    handles = [executor.submit(TrainJob(job, str(root))) for job in jobs]
  manifest = [{'name': job.name, 'job_id': str(h.job_id),
               'workdir': str(job.workdir(root)),
               'command': job.command(root)}
              for job, h in zip(jobs, handles)]
  (root / 'jobs.json').write_text(json.dumps(manifest, indent=2))
  return handles


def collect_results(root: str | os.PathLike) -> list[dict[str, Any]]:
  """Every ``results.json`` under the sweep's root, with its job name."""
  out = []
  for path in sorted(pathlib.Path(root).glob('*/results.json')):
    res = json.loads(path.read_text())
    res.setdefault('job', path.parent.name)
    out.append(res)
  return out
