"""Sweeps as data, their jobs, and submission through submitit.

A sweep file is a Python file with ``get_sweep() -> list[dict]``: each dict
holds the flags of one ``python -m experiments.train`` run (without
``--workdir``, which the sweep assigns). Every job gets its own workdir under
the sweep's root, so a job that is preempted or requeued restarts the same
command, which resumes from the last checkpoint in that workdir.

Submission goes through submitit: on SLURM the jobs become one job array;
the local executor runs the same jobs on this machine.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pathlib
import subprocess
import sys
from typing import Any
from typing import Sequence

import submitit

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
EXECUTORS = ('slurm', 'local')


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

  def command(self, root: str | os.PathLike) -> list[str]:
    """The command line that runs (or resumes) this job."""
    args = [f'--{k}={_flag_value(v)}' for k, v in sorted(self.flags.items())]
    return [sys.executable, '-m', 'experiments.train', *args,
            f'--workdir={self.workdir(root)}']


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
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [str(REPO_ROOT)] + [p for p in [env.get('PYTHONPATH')] if p])
    with open(workdir / 'job.log', 'a') as log:
      proc = subprocess.run(self.job.command(self.root), cwd=REPO_ROOT,
                            env=env, stdout=log, stderr=subprocess.STDOUT,
                            check=False)
    if proc.returncode:
      raise RuntimeError(f'job {self.job.name} failed with exit code '
                         f'{proc.returncode}; see {workdir / "job.log"}')
    return str(workdir / 'results.json')


def make_executor(kind: str, folder: str | os.PathLike, *,
                  timeout_min: int = 60, partition: str | None = None,
                  gpus_per_node: int = 0, cpus_per_task: int = 2,
                  array_parallelism: int = 16,
                  slurm_args: dict[str, Any] | None = None
                  ) -> submitit.Executor:
  """A submitit executor for ``'slurm'`` or ``'local'``."""
  if kind not in EXECUTORS:
    raise ValueError(f'unknown executor {kind!r}; expected one of '
                     f'{list(EXECUTORS)}')
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
