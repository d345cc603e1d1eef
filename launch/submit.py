"""Runs a sweep of ``experiments.train`` runs: on SLURM, locally, or here.

    python -m launch.submit --sweep=launch/sweeps/dear_paper.py \\
        --root=/scratch/$USER/dear_sweep --executor=slurm \\
        --partition=gpu --gpus_per_node=1 --timeout_min=240

On SLURM the runs become one job array (submitit). A preempted or requeued
job restarts its command, which resumes from its last checkpoint. Resubmitting
the same sweep to the same root skips finished runs.

``--executor=worker`` runs the sweep in this process, one run at a time in
the sweep's order, each pinned to ``--cpu`` (one thread): finished runs are
skipped, a run another worker holds is left to it (a lock per workdir), so
several workers (one per core) share one sweep, and a killed worker resumes
when started again:

    python -m launch.submit --sweep=launch/sweeps/dear_cpu.py \\
        --root=/work/runs/dear_cpu --executor=worker --cpu=1

``--only=seed=0 --only=model=dear,nar`` narrows any sweep; ``--set=NAME=VALUE``
adds a flag to every run (e.g. ``--set=data_dir=/data``); ``--done=DIR``
leaves out the runs whose results are in DIR already (e.g. the report's
copies, which outlive the run folders of an earlier machine).
"""

import os
import time

from absl import app
from absl import flags
from absl import logging

from experiments import cli
from launch import sweep as sweep_lib

_SWEEP = flags.DEFINE_string('sweep', None, 'Sweep file with get_sweep().',
                             required=True)
_ROOT = flags.DEFINE_string('root', None, 'Directory of the sweep: one '
                            'workdir per run, submitit logs.', required=True)
_EXECUTOR = flags.DEFINE_enum(
    'executor', 'slurm', sweep_lib.EXECUTORS,
    'slurm: a SLURM job array; local: submitit on this machine; worker: '
    'one run at a time in this process, sharing the sweep with other '
    'workers.')
_ONLY = flags.DEFINE_multi_string(
    'only', [], 'NAME=V1,V2: keep the runs whose flag NAME is one of the '
    'values (repeatable: all must hold).')
_SET = flags.DEFINE_multi_string(
    'set', [], 'NAME=VALUE: add the flag --NAME=VALUE to every run (a '
    'setting that may change on a rerun, such as data_dir).')
_CPU = flags.DEFINE_integer('cpu', None, 'worker: pin every run to this '
                            'core, with one thread.')
_PARTITION = flags.DEFINE_string('partition', None, 'SLURM partition.')
_GPUS = flags.DEFINE_integer('gpus_per_node', 0, 'GPUs per job.')
_CPUS = flags.DEFINE_integer('cpus_per_task', 2, 'CPUs per job.')
_TIMEOUT = flags.DEFINE_integer('timeout_min', 240,
                                'Time limit of one job, in minutes.')
_PARALLELISM = flags.DEFINE_integer(
    'array_parallelism', 16,
    'SLURM: jobs of the array running at once. Local: jobs at once.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False,
                             'Print the commands of the unfinished runs, in '
                             'order, without running them.')
_DONE = flags.DEFINE_string(
    'done', None, 'Folder of finished runs\' results files (e.g. the report '
    'copies in results/dear_cpu/runs): a run of the sweep with the same '
    'algorithm, model, seed and config there counts as finished, so a new '
    'machine does not train it again.')
_WAIT = flags.DEFINE_bool('wait', False,
                          'Wait for every job and report failures.')


def _pairs(values: list[str], flag: str) -> dict[str, str]:
  """``['a=1', 'b=x,y']`` -> ``{'a': '1', 'b': 'x,y'}``."""
  out = {}
  for value in values:
    name, sep, rest = value.partition('=')
    if not sep or not name:
      cli.fail(f'--{flag} takes NAME=VALUE, got {value!r}')
    out[name] = rest
  return out


def load_jobs() -> list[sweep_lib.Job]:
  """The sweep's jobs, narrowed by ``--only`` and extended by ``--set``."""
  try:
    jobs = sweep_lib.load_sweep(_SWEEP.value)
  except (FileNotFoundError, ValueError) as e:
    cli.fail(e)
  only = {name: values.split(',')
          for name, values in _pairs(_ONLY.value, 'only').items()}
  try:
    jobs = sweep_lib.select(jobs, only)
  except ValueError as e:
    cli.fail(e)
  return sweep_lib.with_flags(jobs, _pairs(_SET.value, 'set'))


def run_worker(jobs: list[sweep_lib.Job]) -> None:
  """Runs the jobs here, one at a time (``--executor=worker``)."""
  report = sweep_lib.run_worker(jobs, _ROOT.value, cpu=_CPU.value,
                                log=logging.info)
  logging.info('worker done: %d ran, %d already finished, %d held by other '
               'workers, %d failed', len(report.ran), len(report.finished),
               len(report.held), len(report.failed))
  if report.failed:
    raise SystemExit(f'not finished: {report.failed} (see their job.log)')


def run_submitit(todo: list[sweep_lib.Job]) -> None:
  """Submits the jobs to SLURM or to submitit's local executor."""
  executor = sweep_lib.make_executor(
      _EXECUTOR.value, f'{_ROOT.value}/submitit',
      timeout_min=_TIMEOUT.value, partition=_PARTITION.value,
      gpus_per_node=_GPUS.value, cpus_per_task=_CPUS.value,
      array_parallelism=_PARALLELISM.value)
  if _EXECUTOR.value == 'local':
    # submitit's local executor starts every job at once; run them in
    # groups so a small machine is not oversubscribed.
    handles = []
    for start in range(0, len(todo), _PARALLELISM.value):
      group = sweep_lib.submit(todo[start:start + _PARALLELISM.value],
                               _ROOT.value, executor)
      for h in group:
        _wait(h)
      handles += group
  else:
    handles = sweep_lib.submit(todo, _ROOT.value, executor)
    for job, h in zip(todo, handles):
      print(f'{h.job_id}\t{job.name}\t{job.workdir(_ROOT.value)}')
    if _WAIT.value:
      for h in handles:
        _wait(h)
  failed = [h.job_id for h in handles if h.done() and h.state not in (
      'COMPLETED', 'FINISHED', 'DONE') and h.exception() is not None]
  if failed:
    raise SystemExit(f'failed jobs: {failed}')


def main(argv):
  if len(argv) > 1:
    cli.fail(f'unexpected arguments: {argv[1:]}')
  if _CPU.value is not None:
    if _EXECUTOR.value != 'worker':
      cli.fail(f'--cpu pins the runs of --executor=worker; '
               f'--executor={_EXECUTOR.value} does not use it')
    cpus = os.cpu_count() or 1
    if not 0 <= _CPU.value < cpus:
      cli.fail(f'--cpu={_CPU.value} is not a CPU of this machine (it has '
               f'CPUs 0-{cpus - 1})')
  jobs = load_jobs()
  if _DONE.value:
    if not os.path.isdir(_DONE.value):
      cli.fail(f'--done={_DONE.value} is not a directory')
    done = sweep_lib.finished_in(jobs, _DONE.value)
    logging.info('%d runs of the sweep finished already in %s', len(done),
                 _DONE.value)
    jobs = [j for j in jobs if j.name not in done]
  todo = [j for j in jobs if not j.finished(_ROOT.value)]
  logging.info('%d runs in the sweep, %d already finished, %d to run',
               len(jobs), len(jobs) - len(todo), len(todo))
  if _DRY_RUN.value:
    for job in todo:
      print(' '.join(job.command(_ROOT.value)))
  elif _EXECUTOR.value == 'worker':
    run_worker(jobs)
  elif todo:
    run_submitit(todo)


def _wait(handle, poll_s: float = 5.0) -> None:
  while not handle.done():
    time.sleep(poll_s)


if __name__ == '__main__':
  app.run(main)
