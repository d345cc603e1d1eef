"""The jobs of the results table on one CPU core, as one entry point.

    python -m launch.table_jobs COMMAND [pack|unpack] [--flag=value ...]

Each ``results/<COMMAND>.sh`` is ``python -m launch.table_jobs COMMAND
--from_env``: with ``--from_env`` the environment variables below (in
brackets) give the flags not given on the command line; an empty variable
counts as unset, but for ``DONE`` (``DONE=`` turns ``--done`` off) and
``DRY_RUN`` (any value but empty means ``--dry_run``). Lists take commas
or spaces (``ALGS="bfs dfs"``). Paths are taken from the current folder
(the scripts run from the repository root).

* ``run_table`` [RUNS CORE SEEDS MODELS ALGS DATA DONE DRY_RUN]: trains or
  resumes the table's runs: the sweep worker of ``launch.submit`` on
  ``launch/sweeps/dear_cpu.py`` (the paper's protocol at 5,000 steps, 10
  algorithms x dear, nar, nar_lt x seeds 0-2, in the table's order, seed
  then algorithm then model, with its per-run overrides). Finished runs
  are skipped, unfinished ones resume from their last checkpoint, a run
  another worker holds is left to it, so workers can be killed and
  restarted at any time; runs whose report copies are in ``--done``
  (default ``results/dear_cpu/runs``) count as finished, so a new machine
  does not train them again. ``--dry_run`` prints the commands left.
* ``eval_table`` [RUNS CORE ALGS DATA SIZES EVAL_BATCH]: scores the
  finished dear and nar runs (of the table, or of the ablation:
  ``--runs=/work/runs/ablation``) at ``--sizes`` (default 128) into each
  run's ``eval_results.json`` (``launch.table_scoring.eval_table``).
  ``--eval_batch_size`` for runs whose default batch does not fit in
  memory at that size (floyd_warshall at 128 nodes: 5).
* ``ablate_eval`` [RUNS CORE SEEDS ALGS DATA OUT SETTINGS]: evaluation-only
  ablations of the finished dear runs at 64 nodes, into ``--out``
  (default ``results/dear_cpu/ablations``; ``--settings``: names of
  ``launch.table_scoring.ABLATION_SETTINGS``); then ``python -m
  experiments.ablation_report --files=results/dear_cpu/ablations
  --out=results/dear_cpu/ablations.md``.
* ``run_longer`` [RUNS CORE SEEDS ALGS DATA SWEEP SHORT]: the runs of
  ``launch/sweeps/dear_longer.py`` (runs folder default
  ``/work/runs/longer``) in two legs on one trajectory (:func:`run_longer`).
* ``carry_runs pack|unpack`` [RUNS CARRY]: carries unfinished runs between
  machines through ``--carry`` (default ``results/dear_cpu/unfinished``;
  ``launch.carry_runs``). ``unpack`` exits 1 if an archive was damaged.
* ``allocator_benchmark`` [CORE ALGS MODELS REPEATS OUT]: what the sweeps'
  malloc setting does to a training step and inference
  (:func:`allocator_benchmark`; about 15 minutes with the defaults).

Every job is pinned to ``--core`` with one thread; the run folders default
to ``/work/runs/dear_cpu``. Bad input (an unknown command or setting, a
flag the command does not take, a missing runs folder) ends the program
with one line, ``error: ...``, and status 1.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib
import subprocess
import sys
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from absl import app
from absl import flags
from absl import logging

from experiments import cli
from launch import carry_runs
from launch import sweep as sweep_lib
from launch import table_scoring

RESULTS = sweep_lib.REPO_ROOT / 'results'
TABLE_SWEEP = sweep_lib.REPO_ROOT / 'launch' / 'sweeps' / 'dear_cpu.py'
LONGER_SWEEP = sweep_lib.REPO_ROOT / 'launch' / 'sweeps' / 'dear_longer.py'
DEFAULT_RUNS = '/work/runs/dear_cpu'
LONGER_RUNS = '/work/runs/longer'
DEFAULT_DONE = RESULTS / 'dear_cpu' / 'runs'
DEFAULT_CARRY = RESULTS / 'dear_cpu' / 'unfinished'
DEFAULT_ABLATIONS = RESULTS / 'dear_cpu' / 'ablations'
DEFAULT_ALLOCATOR = RESULTS / 'benchmark_allocator'
ALLOCATOR_ALGORITHMS = ('strongly_connected_components', 'bellman_ford')
ALLOCATOR_MODELS = ('nar', 'dear_phantom')


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
  """Defines the flags of every command in ``flag_values`` (the entry
  point's only: other entry points' flags of the same names, such as
  ``experiments.report``'s ``--runs``, may share a process with this
  module's functions)."""
  fv = dict(flag_values=flag_values)
  flags.DEFINE_string('runs', None, 'Folder of the run workdirs (default '
                      f'{DEFAULT_RUNS}; run_longer: {LONGER_RUNS}).', **fv)
  flags.DEFINE_integer('core', 0, 'CPU core of every job.', **fv)
  flags.DEFINE_string('data_dir', None, 'Dataset cache.', **fv)
  flags.DEFINE_list('algorithms', None, 'Only these algorithms '
                    '(allocator_benchmark: the algorithms, default '
                    f'{",".join(ALLOCATOR_ALGORITHMS)}).', **fv)
  flags.DEFINE_list('seeds', None, 'Only these seeds.', **fv)
  flags.DEFINE_list('models', None, 'run_table: only these models; '
                    'allocator_benchmark: the models (default '
                    f'{",".join(ALLOCATOR_MODELS)}).', **fv)
  flags.DEFINE_string('done', None, 'run_table: folder of finished runs\' '
                      f'results files (default {DEFAULT_DONE}; empty: none).',
                      **fv)
  flags.DEFINE_bool('dry_run', False, 'run_table: print the commands of the '
                    'runs left, in order.', **fv)
  cli.define_number_list('sizes', [128], 'eval_table: test sizes.',
                         flag_values=flag_values)
  flags.DEFINE_integer('eval_batch_size', None, 'eval_table: graphs per '
                       'evaluation call.', **fv)
  flags.DEFINE_string('out', None, 'ablate_eval: folder of the files '
                      f'(default {DEFAULT_ABLATIONS}); allocator_benchmark: '
                      'prefix of OUT.default.json, OUT.tuned.json, OUT.md '
                      f'(default {DEFAULT_ALLOCATOR}).', **fv)
  flags.DEFINE_list('settings', None, 'ablate_eval: the settings (default '
                    f'{",".join(table_scoring.DEFAULT_SETTINGS)}).', **fv)
  flags.DEFINE_string('sweep', None, 'run_longer: sweep file (default '
                      f'{LONGER_SWEEP}).', **fv)
  flags.DEFINE_integer('short_steps', 5000, 'run_longer: training steps of '
                       'the first leg.', **fv)
  flags.DEFINE_string('carry', None, 'carry_runs: folder of the archives '
                      f'(default {DEFAULT_CARRY}).', **fv)
  flags.DEFINE_integer('repeats', 5, 'allocator_benchmark: timed calls per '
                       'measurement.', **fv)
  flags.DEFINE_bool('from_env', False, 'Take the flags not given from the '
                    'environment variables of results/*.sh (see the module '
                    'docstring).', **fv)


@dataclasses.dataclass(frozen=True)
class Command:
  """A command: its environment variables -> flags, and its actions."""
  env: Mapping[str, str]
  actions: tuple[str, ...] = ()


COMMANDS: dict[str, Command] = {
    'run_table': Command(dict(
        RUNS='runs', CORE='core', SEEDS='seeds', MODELS='models',
        ALGS='algorithms', DATA='data_dir', DONE='done', DRY_RUN='dry_run')),
    'eval_table': Command(dict(
        RUNS='runs', CORE='core', ALGS='algorithms', DATA='data_dir',
        SIZES='sizes', EVAL_BATCH='eval_batch_size')),
    'ablate_eval': Command(dict(
        RUNS='runs', CORE='core', SEEDS='seeds', ALGS='algorithms',
        DATA='data_dir', OUT='out', SETTINGS='settings')),
    'run_longer': Command(dict(
        RUNS='runs', CORE='core', SEEDS='seeds', ALGS='algorithms',
        DATA='data_dir', SWEEP='sweep', SHORT='short_steps')),
    'carry_runs': Command(dict(RUNS='runs', CARRY='carry'),
                          actions=('pack', 'unpack')),
    'allocator_benchmark': Command(dict(
        CORE='core', ALGS='algorithms', MODELS='models', REPEATS='repeats',
        OUT='out')),
}
_LIST_FLAGS = ('algorithms', 'seeds', 'models', 'sizes', 'settings')
_KEEP_EMPTY = ('DONE',)


class JobFailed(Exception):
  """A job ran and did not finish (its log says why)."""


def env_args(command: str, environ: Mapping[str, str]) -> list[str]:
  """The flags that ``command``'s environment variables in ``environ``
  give (module docstring), in the order of :data:`COMMANDS`."""
  args = []
  for var, flag in COMMANDS[command].env.items():
    value = environ.get(var)
    if value is None or (not value and var not in _KEEP_EMPTY):
      continue
    if flag == 'dry_run':
      args.append('--dry_run')
    elif flag in _LIST_FLAGS:
      args.append(f'--{flag}={",".join(value.replace(",", " ").split())}')
    else:
      args.append(f'--{flag}={value}')
  return args


def parse_flags(argv: list[str]) -> list[str]:
  """absl's flag parser, with ``--from_env``'s flags put before the given
  ones (so that the command line wins)."""
  if '--from_env' in argv[1:]:
    command = next((a for a in argv[1:] if not a.startswith('-')), None)
    if command in COMMANDS:
      argv = [argv[0], *env_args(command, os.environ), *argv[1:]]
  return app.parse_flags_with_usage(argv)


def run_table_args(runs: str, *, core: int = 0,
                   seeds: Sequence[str] | None = None,
                   models: Sequence[str] | None = None,
                   algorithms: Sequence[str] | None = None,
                   data_dir: str | None = None,
                   done: str | os.PathLike | None = DEFAULT_DONE,
                   dry_run: bool = False) -> list[str]:
  """The ``launch.submit`` flags of the table's worker (``run_table``)."""
  args = [f'--sweep={TABLE_SWEEP}', f'--root={runs}', '--executor=worker',
          f'--cpu={core}']
  for name, values in (('seed', seeds), ('model', models),
                       ('algorithm', algorithms)):
    if values:
      args.append(f'--only={name}={",".join(values)}')
  if data_dir:
    args.append(f'--set=data_dir={data_dir}')
  if done:
    args.append(f'--done={done}')
  if dry_run:
    args.append('--dry_run')
  return args


def _train_steps(results: pathlib.Path) -> int | None:
  """The ``train_steps`` a ``results.json`` records (None: no such file)."""
  try:
    return json.loads(results.read_text()).get('train_steps')
  except (OSError, ValueError, AttributeError):
    return None


def _leg(job: sweep_lib.Job, runs: str, core: int, worker: Callable[..., Any],
         log: Callable[[str], None]) -> None:
  """Runs one leg of ``job`` through ``worker``; raises JobFailed if it
  ran and did not finish."""
  report = worker([job], runs, cpu=core, log=log)
  if report.failed:
    raise JobFailed(f'not finished: {job.name} (see '
                    f'{job.workdir(runs) / "job.log"})')


def run_longer(sweep: str | os.PathLike, runs: str, *,
               short_steps: int = 5000, seeds: Sequence[str] | None = None,
               algorithms: Sequence[str] | None = None,
               data_dir: str | None = None, core: int = 0,
               worker: Callable[..., Any] = sweep_lib.run_worker,
               log: Callable[[str], None] = logging.info) -> None:
  """Trains (or resumes) the sweep's runs, one at a time in its order,
  each in two legs, so both budgets are read off one trajectory
  (``experiments.budget_report``):

  1. to ``short_steps`` (the table's 5,000): its ``results.json`` is then
     renamed ``results.<short_steps>.json`` (a worker takes a run with a
     ``results.json`` for finished); a run that has that file skips it;
  2. on to the sweep's ``train_steps`` from its own checkpoint
     (``train_steps`` is a resumable change; the best-by-validation
     parameters are in the checkpoint), which writes ``results.json``.

  Killed anywhere, run it again and it resumes. A first leg that did not
  finish the run at ``short_steps`` (another worker holds it) is said and
  its run skipped.

  Raises:
    FileNotFoundError, ValueError: a bad sweep file, or seeds or algorithms
      it does not have.
    JobFailed: a leg stopped without finishing (the run's ``job.log``).
  """
  only = {name: values for name, values in (('seed', seeds),
                                            ('algorithm', algorithms))
          if values}
  jobs = sweep_lib.select(sweep_lib.load_sweep(sweep), only)
  if data_dir:
    jobs = sweep_lib.with_flags(jobs, {'data_dir': data_dir})
  for job in jobs:
    workdir = job.workdir(runs)
    snapshot = workdir / f'results.{short_steps}.json'
    if not snapshot.exists():
      (short,) = sweep_lib.with_flags([job],
                                      {'config.train_steps': short_steps})
      _leg(short, runs, core, worker, log)
      if _train_steps(workdir / 'results.json') != short_steps:
        log(f'{job.name}: no {short_steps}-step results.json (held by '
            'another worker?)')
        continue
      os.replace(workdir / 'results.json', snapshot)
    _leg(job, runs, core, worker, log)


def run_inheriting(command: Sequence[str], env: Mapping[str, str]) -> int:
  """Runs ``command`` from the repository root with this process's output;
  returns its exit status."""
  return subprocess.run(list(command), cwd=sweep_lib.REPO_ROOT,
                        env=dict(env), check=False).returncode


def allocator_benchmark(
    out: str, *, algorithms: Sequence[str] = ALLOCATOR_ALGORITHMS,
    models: Sequence[str] = ALLOCATOR_MODELS, repeats: int = 5,
    core: int = 0,
    run: Callable[[Sequence[str], Mapping[str, str]], int] = run_inheriting,
    log: Callable[[str], None] = logging.info) -> str:
  """Times ``experiments.benchmark`` on ``core`` twice, with glibc's
  defaults and with the sweeps' malloc setting (``ALLOCATOR_ENV``), on the
  table's shapes (batch 32, latent 128, graphs of 16 nodes), into
  ``<out>.default.json`` and ``<out>.tuned.json``; writes and returns the
  table of the ratios of the medians (``<out>.md``, built as
  ``experiments.rebuild_results`` builds it).

  Raises:
    JobFailed: a benchmark failed.
  """
  tuned = sweep_lib.ALLOCATOR_ENV['GLIBC_TUNABLES']
  records = {}
  for variant, setting in (('default', ''), ('tuned', tuned)):
    log(f"benchmarking with GLIBC_TUNABLES='{setting}'")
    output = f'{out}.{variant}.json'
    env = {**sweep_lib.job_env(core), 'GLIBC_TUNABLES': setting}
    returncode = run(sweep_lib.pinned_command([
        sys.executable, '-m', 'experiments.benchmark',
        f'--algorithms={",".join(algorithms)}',
        f'--models={",".join(models)}', '--sizes=16', '--train_size=16',
        '--batch_size=32', '--hidden_size=128', f'--repeats={repeats}',
        '--memory_caps=', f'--output={output}'], core), env)
    if returncode:
      raise JobFailed(f'experiments.benchmark with GLIBC_TUNABLES='
                      f"'{setting}' failed "
                      f'({sweep_lib.exit_reason(returncode)})')
    records[variant] = json.loads(pathlib.Path(output).read_text())
  # The table's code (report modules) is needed only here.
  from experiments import rebuild_results  # noqa: PLC0415
  text = rebuild_results.allocator_markdown(records['default'],
                                            records['tuned'], tuned)
  pathlib.Path(f'{out}.md').write_text(text)
  return text


def _path(value: str | os.PathLike | None,
          default: str | os.PathLike | None = None) -> str | None:
  """``value`` (or ``default`` where it is None) as an absolute path; an
  empty value stays empty (``--done=``: none)."""
  value = default if value is None else value
  return os.path.abspath(value) if value else value


def _command(argv: Sequence[str]) -> tuple[str, str | None]:
  """The command and action of the positional arguments (one-line errors
  for anything else)."""
  names = ', '.join(COMMANDS)
  if len(argv) < 2:
    cli.fail(f'no command; expected one of: {names}')
  command, rest = argv[1], list(argv[2:])
  if command not in COMMANDS:
    cli.fail(f'unknown command {command!r}; expected one of: {names}')
  actions = COMMANDS[command].actions
  if actions:
    if len(rest) != 1 or rest[0] not in actions:
      cli.fail(f'{command} takes one of {"|".join(actions)}, got '
               f'{" ".join(rest) or "nothing"}')
    return command, rest[0]
  if rest:
    cli.fail(f'unexpected arguments: {rest}')
  return command, None


def _check_flags(command: str, flag_values: flags.FlagValues) -> None:
  """Refuses flags the command does not take, and a core not there."""
  taken = set(COMMANDS[command].env.values())
  known = {f for c in COMMANDS.values() for f in c.env.values()}
  foreign = sorted(f for f in known - taken if flag_values[f].present)
  if foreign:
    cli.fail(f'{command} takes no --{foreign[0]}; its flags: '
             f'{", ".join("--" + f for f in sorted(taken))}')
  if command == 'eval_table' and not flag_values.sizes:
    cli.fail('--sizes is empty: give at least one test size')
  cpus, core = os.cpu_count() or 1, flag_values.core
  if 'core' in taken and not 0 <= core < cpus:
    cli.fail(f'--core={core} is not a CPU of this machine (it has '
             f'CPUs 0-{cpus - 1})')


def _run(command: str, action: str | None, f: flags.FlagValues) -> None:
  """Runs ``command`` with the values of the flags ``f``."""
  runs = _path(f.runs, LONGER_RUNS if command == 'run_longer'
               else DEFAULT_RUNS)
  data, core = _path(f.data_dir), f.core
  if command == 'run_table':
    args = run_table_args(
        runs, core=core, seeds=f.seeds, models=f.models,
        algorithms=f.algorithms, data_dir=data,
        done=_path(f.done, DEFAULT_DONE), dry_run=f.dry_run)
    # The worker itself, in this process (killing this process kills it).
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, '-m', 'launch.submit', *args],
              sweep_lib.repo_env())
  elif command == 'eval_table':
    table_scoring.eval_table(
        runs, sizes=f.sizes, data_dir=data,
        eval_batch_size=f.eval_batch_size, algorithms=f.algorithms, core=core)
  elif command == 'ablate_eval':
    table_scoring.ablate_eval(
        runs, _path(f.out, DEFAULT_ABLATIONS),
        settings=f.settings or table_scoring.DEFAULT_SETTINGS,
        seeds=f.seeds, algorithms=f.algorithms, data_dir=data, core=core)
  elif command == 'run_longer':
    run_longer(_path(f.sweep, LONGER_SWEEP), runs,
               short_steps=f.short_steps, seeds=f.seeds,
               algorithms=f.algorithms, data_dir=data, core=core)
  elif command == 'carry_runs':
    _carry(action, runs, _path(f.carry, DEFAULT_CARRY))
  else:
    print(allocator_benchmark(
        _path(f.out, DEFAULT_ALLOCATOR),
        algorithms=f.algorithms or ALLOCATOR_ALGORITHMS,
        models=f.models or ALLOCATOR_MODELS, repeats=f.repeats,
        core=core))


def _carry(action: str, runs: str, carry: str) -> None:
  """``carry_runs pack|unpack``; unpack exits 1 after a damaged archive."""
  if action == 'pack':
    carry_runs.pack(runs, carry)
  elif carry_runs.unpack(runs, carry,
                         warn=lambda line: print(line, file=sys.stderr)):
    raise SystemExit(1)


def main(argv: Sequence[str]) -> None:
  """Runs the command of ``argv`` (after absl has taken the flags)."""
  command, action = _command(argv)
  _check_flags(command, flags.FLAGS)
  try:
    _run(command, action, flags.FLAGS)
  except (FileNotFoundError, ValueError, JobFailed) as e:
    cli.fail(e)


if __name__ == '__main__':
  define_flags()
  app.run(main, flags_parser=parse_flags)
