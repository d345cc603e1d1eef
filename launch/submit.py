"""Submits a sweep of ``experiments.train`` runs to SLURM or runs it locally.

    python -m launch.submit --sweep=launch/sweeps/dear_paper.py \\
        --root=/scratch/$USER/dear_sweep --executor=slurm \\
        --partition=gpu --gpus_per_node=1 --timeout_min=240

On SLURM the runs become one job array (submitit). A preempted or requeued
job restarts its command, which resumes from its last checkpoint. Resubmitting
the same sweep to the same root skips finished runs.
"""

import time

from absl import app
from absl import flags
from absl import logging

from launch import sweep as sweep_lib

_SWEEP = flags.DEFINE_string('sweep', None, 'Sweep file with get_sweep().',
                             required=True)
_ROOT = flags.DEFINE_string('root', None, 'Directory of the sweep: one '
                            'workdir per run, submitit logs.', required=True)
_EXECUTOR = flags.DEFINE_enum('executor', 'slurm', sweep_lib.EXECUTORS,
                              'Where to run the jobs.')
_PARTITION = flags.DEFINE_string('partition', None, 'SLURM partition.')
_GPUS = flags.DEFINE_integer('gpus_per_node', 0, 'GPUs per job.')
_CPUS = flags.DEFINE_integer('cpus_per_task', 2, 'CPUs per job.')
_TIMEOUT = flags.DEFINE_integer('timeout_min', 240,
                                'Time limit of one job, in minutes.')
_PARALLELISM = flags.DEFINE_integer(
    'array_parallelism', 16,
    'SLURM: jobs of the array running at once. Local: jobs at once.')
_DRY_RUN = flags.DEFINE_bool('dry_run', False,
                             'Print the commands without submitting.')
_WAIT = flags.DEFINE_bool('wait', False,
                          'Wait for every job and report failures.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  try:
    jobs = sweep_lib.load_sweep(_SWEEP.value)
  except (FileNotFoundError, ValueError) as e:
    raise app.UsageError(str(e)) from e
  todo = [j for j in jobs
          if not (j.workdir(_ROOT.value) / 'results.json').exists()]
  logging.info('%d runs in the sweep, %d already finished, %d to submit',
               len(jobs), len(jobs) - len(todo), len(todo))
  if _DRY_RUN.value:
    for job in todo:
      print(' '.join(job.command(_ROOT.value)))
    return
  if not todo:
    return
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


def _wait(handle, poll_s: float = 5.0) -> None:
  while not handle.done():
    time.sleep(poll_s)


if __name__ == '__main__':
  app.run(main)
