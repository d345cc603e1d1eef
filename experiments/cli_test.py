"""The absl entry points refuse bad flags with a message that says why."""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_module(module, *args, quiet_env=True):
  """``python -m module *args``; ``quiet_env=False``: without
  ``TF_CPP_MIN_LOG_LEVEL``, as a user runs it (the program sets it)."""
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
  if not quiet_env:
    del env['TF_CPP_MIN_LOG_LEVEL']
  return subprocess.run([sys.executable, '-m', module, *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300)


# The heavy imports a refused command line must not reach.
HEAVY = ('clrs', 'tensorflow', 'haiku', 'chex', 'tensorflow_datasets')


def run_train_importing(*args):
  """``python -m experiments.train`` under ``-X importtime``: the process
  and the top-level names of the modules it imported."""
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run(
      [sys.executable, '-X', 'importtime', '-m', 'experiments.train', *args],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  imported = set(re.findall(r'^import time:.*\| +([\w.]+)$', proc.stderr,
                            flags=re.MULTILINE))
  return proc, {name.split('.')[0] for name in imported}


def assert_one_line_error(proc, message):
  """Status 1, no traceback, and ``error: <message>`` as the last line."""
  assert proc.returncode == 1, proc.stderr[-2000:]
  assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  last = proc.stderr.strip().splitlines()[-1]
  assert last.startswith('error: ') and message in last, last


@pytest.mark.parametrize('args, message', [
    (['--algorithm=bogosort'], "unknown algorithm 'bogosort'; valid CLRS-30 "
     'algorithms: activity_selector, articulation_points, bellman_ford, bfs'),
    (['--model=nar', '--rel_tol=0.01'],
     '--rel_tol only applies to the equilibrium solver of --model=dear'),
    (['--algorithm=bfs', 'extra'], "unexpected arguments: ['extra']"),
    # --config.<field> settings the model would ignore are refused like the
    # named flags (they were accepted silently before).
    (['--model=nar_lt', '--config.deq.rel_tol=0.01'],
     '--config.deq.rel_tol only applies to the equilibrium solver of '
     '--model=dear; --model=nar_lt runs its processor until its learned '
     'stop'),
    (['--model=dear', '--config.nar_lt.cap_per_node=3'],
     '--config.nar_lt.cap_per_node only applies to --model=nar_lt'),
    # A negative seed failed in NumPy, after the run had started.
    (['--seed=-1'], 'seed must be in [0, 2**32), got -1'),
    # A config file that cannot load ended in ml_collections' traceback.
    (['--config', '/nonexistent/dear.py', '--config.seed=3'],
     '--config=/nonexistent/dear.py: cannot read it (No such file or '
     'directory)'),
    # An argument for a get_config that takes none ended in absl's FATAL
    # flags message with ml_collections' traceback text.
    (['--config=experiments/configs/dear_cpu.py:64'],
     "--config=experiments/configs/dear_cpu.py: its get_config() takes no "
     "argument, but the flag gives it '64'"),
])
def test_bad_flags_end_train_in_one_line_without_the_flag_help(tmp_path, args,
                                                               message):
  proc = run_module('experiments.train', *args,
                    f'--workdir={tmp_path / "run"}',
                    f'--data_dir={tmp_path / "data"}')
  assert_one_line_error(proc, message)
  assert '--workdir:' not in proc.stderr  # absl's flag help is not printed
  assert 'JAX computes on' not in proc.stderr  # nor the devices before it
  assert not (tmp_path / 'run').exists()  # refused before doing anything


@pytest.mark.parametrize('args, message', [
    (['--algorithm=bogosort'], "unknown algorithm 'bogosort'"),
    (['--model=hints'], "unknown model 'hints'"),
    (['--model=nar', '--rel_tol=0.01'],
     '--rel_tol only applies to the equilibrium solver of --model=dear'),
    (['--config.deq.rel_toll=0.01'],
     'unknown config field --config.deq.rel_toll (did you mean'),
    (['--solver=newton'], "unknown solver method 'newton'"),
    (['--config.pointer_loss=edge'], "pointer_loss must be one of "
     "['all_nodes', 'edges'], got 'edge'"),
    (['--config.pointer_loss=edges'],
     "pointer_loss='edges' needs cell.mask_pointers=True"),
    (['--workdir=/proc/deq_clrs/run'],
     'cannot write to --workdir=/proc/deq_clrs/run'),
])
def test_bad_flags_are_refused_before_clrs_is_imported(tmp_path, args,
                                                       message):
  # They took 14-52 s, most of it CLRS's and TensorFlow's import, and an
  # unwritable workdir was named after an 80-line config dump. What is
  # imported is checked, not the time (the machines are shared).
  proc, imported = run_train_importing(f'--workdir={tmp_path / "run"}', *args)
  assert_one_line_error(proc, message)
  assert 'config:' not in proc.stderr
  assert not imported & set(HEAVY), sorted(imported & set(HEAVY))


def test_the_static_algorithm_names_are_clrs_30():
  import clrs

  from deq_clrs.training import preflight
  assert preflight.CLRS_30_ALGORITHMS == tuple(
      sorted(clrs.CLRS_30_ALGS_SETTINGS))


def _help_text(*args):
  proc = run_module('experiments.train', *args)
  assert 'Traceback' not in proc.stderr, proc.stderr[-2000:]
  return ' '.join((proc.stdout + proc.stderr).split())  # unwrapped


def test_help_names_our_flags_with_their_defaults_and_no_others():
  text = _help_text('--helpfull')
  for flag, default in [('train_steps', '300'), ('algorithm', 'bfs'),
                        ('rel_tol', '0.1'), ('test_sizes', '64'),
                        ('model', 'dear'), ('processor', "''")]:
    # The flag's help up to the next flag's name.
    match = re.search(rf'--{flag}: ((?:(?! --[a-z_]+:).)*)', text)
    assert match, (flag, text[:3000])
    assert f'(default from the config: {default})' in match.group(1), (
        match.group(0))
  assert '--train_steps: Training steps. (default from the config: 300)' in (
      text)
  # Ours first, then absl's; none of CLRS's, TensorFlow's or chex's.
  assert text.index('--algorithm:') < text.index('absl.app:')
  for other in ('chex', 'tensorflow', 'tfds', 'clrs_text', '--tpu',
                'absltest'):
    assert other not in text, other
  # The defaults are the --config file's.
  config_file = os.path.join(ROOT, 'experiments', 'configs', 'test.py')
  text = _help_text(f'--config={config_file}', '--help')
  assert '--hidden_size: Latent size. (default from the config: 16)' in text


@pytest.fixture
def parse(tmp_path):
  """Parses a command line of experiments.train in-process."""
  from experiments import train

  def parse_flags(*flags):
    train.FLAGS.unparse_flags()
    config_file = os.path.join(ROOT, 'experiments', 'configs', 'default.py')
    train.FLAGS(['train', f'--config={config_file}',
                 f'--workdir={tmp_path / "run"}',
                 f'--data_dir={tmp_path / "data"}', *flags])
    return train.config_from_flags()

  yield parse_flags
  train.FLAGS.unparse_flags()


@pytest.mark.parametrize('flags, message', [
    (['--model=nar', '--rel_tol=0.01', '--backward=implicit'],
     '--backward, --rel_tol only apply to the equilibrium solver of '
     '--model=dear; --model=nar runs its processor for the true number of '
     'steps'),
    (['--model=nar_hints', '--jac_reg_weight=0.1'], '--jac_reg_weight only'),
    (['--model=nar_lt', '--eval_max_iter=99'],
     '--eval_max_iter only applies to the equilibrium solver of --model=dear; '
     '--model=nar_lt runs its processor until its learned stop (the true '
     'number of steps in training)'),
    (['--model=dear', '--processor=triplet_mpnn'],
     '--model=dear needs an equilibrium processor'),
    (['--model=nar', '--processor=deq_mpnn'], 'only valid with --model=dear'),
    (['--model=hints'], "unknown model 'hints'"),
    (['--test_sizes=2'], 'test_sizes must be >= 4 nodes'),
    (['--solver=newton'], "unknown solver method 'newton'"),
    (['--backward=adjoint'], "unknown backward mode 'adjoint'"),
    (['--max_iter=0'], 'iteration caps must be >= 1'),
    (['--batch_size=0'], 'batch_size must be >= 1'),
    (['--learning_rate=-1'], 'learning_rate must be > 0'),
])
def test_bad_flags_are_refused(parse, flags, message):
  with pytest.raises(ValueError) as error:
    parse(*flags)
  assert message in str(error.value)


def test_config_fields_given_are_the_command_line_overrides_only():
  # The config file's own values (test.py sets deq.max_iter) are not
  # overrides: only what the command line gives is checked against the model.
  from absl import flags

  from experiments import cli
  config_file = os.path.join(ROOT, 'experiments', 'configs', 'test.py')
  argv = ['train', f'--config={config_file}', '--workdir=/tmp/unused',
          '--config.nar_lt.cap_per_node=3', '--config.deq.rel_tol=0.02',
          '--rel_tol=0.05']
  values = flags.FlagValues()
  train_flags = cli.define_train_flags(values, sys_argv=argv)
  values(argv)
  assert train_flags.config_fields_given() == ['deq.rel_tol',
                                               'nar_lt.cap_per_node']
  assert list(cli.given_overrides(train_flags.named)) == ['deq.rel_tol']


@pytest.mark.parametrize('model, fields, named, message', [
    ('nar', ['deq.rel_tol'], [], '--config.deq.rel_tol only applies'),
    ('nar_hints', [], ['deq.max_iter'], '--max_iter only applies'),
    ('nar', ['deq.noise_std'], ['deq.rel_tol'],
     '--config.deq.noise_std, --rel_tol only apply'),
    ('nar', ['nar_lt.cap_per_node'], [], 'only applies to --model=nar_lt'),
    ('dear', ['nar_lt.cap_per_node', 'deq.rel_tol'], [],
     '--config.nar_lt.cap_per_node only applies to --model=nar_lt '
     '(learned termination), not --model=dear'),
    ('dear', ['deq.rel_tol', 'hidden_size'], ['deq.max_iter'], None),
    ('nar_lt', ['nar_lt.cap_per_node', 'cell.gate'], [], None),
    ('nar', ['hidden_size'], ['hidden_size'], None),
])
def test_settings_must_fit_the_model(model, fields, named, message):
  import ml_collections

  from experiments import cli
  config = ml_collections.ConfigDict({'model': model})
  if message is None:
    cli.check_settings_fit_model(fields, named, config)
  else:
    with pytest.raises(ValueError, match=re.escape(message)):
      cli.check_settings_fit_model(fields, named, config)


@pytest.mark.parametrize('flag', ['--test_sizes=64,big', '--test_sizes=6.5'])
def test_integer_lists_are_refused_when_the_flags_are_parsed(parse, flag):
  from absl import flags
  with pytest.raises(flags.IllegalFlagValueError,
                     match='must be ints separated by commas'):
    parse(flag)


def test_good_flags_reach_the_config(parse):
  config = parse('--algorithm=dfs', '--model=dear', '--hidden_size=32',
                 '--rel_tol=0.01', '--eval_max_iter=77', '--backward=implicit',
                 '--test_sizes=64,128', '--train_steps=9')
  assert (config.algorithm, config.hidden_size) == ('dfs', 32)
  assert (config.deq.rel_tol, config.deq.eval_max_iter) == (0.01, 77)
  assert config.deq.backward == 'implicit'
  assert tuple(config.test_sizes) == (64, 128)
  assert config.train_steps == 9
  nar = parse('--model=nar', '--processor=clrs:triplet_gmpnn')
  assert nar.processor == 'clrs:triplet_gmpnn'


@pytest.mark.parametrize('config_file', [None, 'test.py'])
def test_a_config_field_typo_is_named_in_one_line(tmp_path, config_file):
  # ml_collections raises at flag definition without --config=, at flag
  # parsing with it: both end in the same line.
  args = [f'--workdir={tmp_path / "run"}', '--config.deq.rel_toll=0.01']
  if config_file:
    args.insert(0, '--config=' + os.path.join(ROOT, 'experiments', 'configs',
                                             config_file))
  proc = run_module('experiments.train', *args)
  assert_one_line_error(
      proc, 'unknown config field --config.deq.rel_toll (did you mean '
      '--config.deq.rel_tol?); the fields of config.deq are: abs_tol, ')
  assert not (tmp_path / 'run').exists()


def assert_quiet_start_up(proc):
  """TensorFlow's and XLA's start-up lines are gone; the devices are named
  once."""
  for noise in ('oneDNN', 'cuda', 'cuInit', 'absl::InitializeLog', 'libtpu'):
    assert noise not in proc.stderr, proc.stderr
  assert proc.stderr.count('JAX computes on 1 x cpu (backend cpu') == 1


def test_evaluate_on_a_missing_workdir_ends_in_one_line(tmp_path):
  proc = run_module('experiments.evaluate', f'--workdir={tmp_path / "no"}',
                    quiet_env=False)
  assert_one_line_error(proc, f'--workdir={tmp_path / "no"} does not exist')
  assert_quiet_start_up(proc)


def test_train_starts_up_quietly_after_its_late_clrs_import(tmp_path):
  # jax is imported before the flags are checked and CLRS after: the log
  # level must still be set before jax (an E-level "failed call to cuInit"
  # came through when it was not). A workdir of another run stops it
  # after the start-up.
  (tmp_path / 'run').mkdir()
  (tmp_path / 'run' / 'config.json').write_text('{"hidden_size": 1}')
  proc = run_module('experiments.train', '--config=' + os.path.join(
      ROOT, 'experiments', 'configs', 'test.py'),
                    f'--workdir={tmp_path / "run"}', quiet_env=False)
  assert_one_line_error(proc, 'holds a run with a different config')
  assert_quiet_start_up(proc)


def test_start_up_noise_is_filtered_and_the_rest_kept(capfd):
  from experiments import quiet
  lines = [
      'WARNING: All log messages before absl::InitializeLog() is called are '
      'written to STDERR\n',
      'I0000 00:00:1795410599.643792   13643 port.cc:153] oneDNN custom '
      'operations are on.\n',
      'W1123 05:17:31.331937 140432094669696 xla_bridge.py:849] a warning\n',
      'E0000 00:00:1795410625.146476   13779 cuda_platform.cc:52] an error\n',
      'a line of Python\n']
  with quiet.filtered_stderr():
    for line in lines:
      os.write(2, line.encode())
  assert capfd.readouterr().err == lines[3] + lines[4]
  with pytest.raises(ImportError):  # A failed import shows everything.
    with quiet.filtered_stderr():
      os.write(2, lines[1].encode())
      raise ImportError
  assert capfd.readouterr().err == lines[1]


def test_a_workdir_that_cannot_be_created_ends_in_one_line(parse, tmp_path):
  from experiments import train
  (tmp_path / 'file').write_text('')
  parse('--config=' + os.path.join(ROOT, 'experiments', 'configs',
                                   'test.py'),
        f'--workdir={tmp_path / "file" / "run"}')
  with pytest.raises(SystemExit) as exit_:
    train.main(['train'])
  assert str(exit_.value) == (
      f'error: cannot write to --workdir={tmp_path / "file" / "run"} (Not a '
      f'directory); choose a directory you can create and write to')


def test_a_changed_config_ends_in_one_line(parse, tmp_path):
  from experiments import train
  config_file = os.path.join(ROOT, 'experiments', 'configs', 'test.py')
  saved = parse(f'--config={config_file}')
  os.makedirs(tmp_path / 'run')
  (tmp_path / 'run' / 'config.json').write_text(saved.to_json())
  parse(f'--config={config_file}', '--hidden_size=8')
  with pytest.raises(SystemExit) as exit_:
    train.main(['train'])
  assert str(exit_.value).startswith(
      f'error: {tmp_path / "run"} holds a run with a different config (keys '
      "['hidden_size']: hidden_size: 16 there, 8 now); use a new --workdir")


def test_number_lists_parse_to_numbers_or_say_why():
  from absl import flags

  from experiments import cli
  values = flags.FlagValues()
  sizes = cli.define_number_list('sizes', [16, 64], 'sizes',
                                 flag_values=values)
  probs = cli.define_number_list('p', [], 'probs', kind=float,
                                 flag_values=values)
  values(['prog'])
  assert (sizes.value, probs.value) == ([16, 64], [])
  values(['prog', '--sizes=8, 12', '--p=0.5,1e-1'])
  assert (sizes.value, probs.value) == ([8, 12], [0.5, 0.1])
  with pytest.raises(flags.IllegalFlagValueError,
                     match=r'flag --sizes=8,x: must be ints separated by '
                           r'commas'):
    values(['prog', '--sizes=8,x'])


def test_dataclass_flags_have_the_fields_types_and_defaults():
  import dataclasses

  from absl import flags

  from experiments import cli

  @dataclasses.dataclass(frozen=True)
  class Config:
    sizes: tuple[int, ...] = (16, 64)
    names: tuple[str, ...] = ('a', 'b')
    rate: float = 0.5
    steps: int = 3
    on: bool = False
    path: str | None = None

  values = flags.FlagValues()
  holders = cli.define_dataclass_flags(
      Config, {f.name: f.name for f in dataclasses.fields(Config)},
      prefix='x_', flag_values=values)
  values(['prog'])
  assert Config(**cli.dataclass_values(holders)) == Config()
  values(['prog', '--x_sizes=8', '--x_names=c', '--x_rate=2', '--x_steps=4',
          '--x_on', '--x_path=/p'])
  assert Config(**cli.dataclass_values(holders)) == Config(
      (8,), ('c',), 2.0, 4, True, '/p')
  with pytest.raises(KeyError, match="no field"):
    cli.define_dataclass_flags(Config, {'stepz': ''}, flag_values=values)


_FLAG_DEFAULTS = '''
import importlib, json, sys
from absl import flags
importlib.import_module(sys.argv[1])
print(json.dumps({name: flags.FLAGS[name].default for name in flags.FLAGS},
                 default=repr))
'''


def flag_defaults(module):
  """The default of every flag once ``module`` is imported (a subprocess:
  entry points define flags of the same names)."""
  import json
  proc = run_module_code(_FLAG_DEFAULTS, module)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def run_module_code(code, *args):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
  return subprocess.run([sys.executable, '-c', code, *args], cwd=ROOT,
                        env=env, capture_output=True, text=True, timeout=300)


def _as_field(value):
  return tuple(value) if isinstance(value, list) else value


# Slow-marked (CI's slow set runs it) to keep the default run under 8
# minutes on 2 cores; about 20 s there.
@pytest.mark.slow
def test_entry_point_flag_defaults_are_the_dataclass_defaults():
  """Each default is written once, in a dataclass; the flags read it."""
  import dataclasses

  from deq_clrs import solvers
  from deq_clrs.measure import gradient_run
  from deq_clrs.measure import speed

  def check(defaults, cls, names, prefix=''):
    fields = {f.name: f.default for f in dataclasses.fields(cls)}
    for name in names:
      assert _as_field(defaults[prefix + name]) == fields[name], (
          f'--{prefix}{name}: flag default {defaults[prefix + name]!r}, '
          f'{cls.__name__}.{name} = {fields[name]!r}')

  bench = flag_defaults('experiments.benchmark')
  check(bench, speed.BenchmarkConfig,
        [f.name for f in dataclasses.fields(speed.BenchmarkConfig)])
  check(bench, gradient_run.GradientAgreementConfig,
        ['steps', 'algorithm', 'size', 'workdir'], prefix='gradient_')
  config = speed.BenchmarkConfig()
  library = solvers.SolverConfig()
  assert (config.max_iter, config.eval_max_iter, config.rel_tol) == (
      library.max_iter, library.eval_max_iter, library.rel_tol)
  oracle = flag_defaults('experiments.oracle_runs')
  check(oracle, solvers.SolverConfig, ['history_size', 'ridge'])


_EVALUATE_ARGS = '''
import json, sys
from absl import flags
from deq_clrs import training
from experiments import evaluate
calls = []
training.evaluate_checkpoint = lambda *a, **k: calls.append([a, k])
flags.FLAGS(['evaluate', *sys.argv[1:]])
evaluate.main(['evaluate'])
print(json.dumps(calls))
'''


@pytest.mark.slow
def test_evaluate_passes_its_flags_to_evaluate_checkpoint():
  import json
  proc = run_module_code(_EVALUATE_ARGS, '--workdir=/w', '--test_sizes=8,12',
                         '--rel_tol=0.3', '--solver=anderson_growing',
                         '--return_best', '--nonoise_in_eval',
                         '--phantom_in_eval',
                         '--eval_batch_size=4', '--read_at=true_length')
  assert proc.returncode == 0, proc.stderr[-2000:]
  ((args, kwargs),) = json.loads(proc.stdout.strip().splitlines()[-1])
  assert args == ['/w', [8, 12]] and kwargs['eval_batch_size'] == 4
  assert kwargs['read_at'] == 'true_length'
  assert kwargs['solver_overrides'] == {'rel_tol': 0.3,
                                        'solver': 'anderson_growing',
                                        'return_best': True,
                                        'noise_in_eval': False,
                                        'phantom_in_eval': True}
  proc = run_module_code(_EVALUATE_ARGS, '--workdir=/w')
  ((args, kwargs),) = json.loads(proc.stdout.strip().splitlines()[-1])
  assert args == ['/w', None] and kwargs['solver_overrides'] == {}
  assert kwargs['eval_batch_size'] is None and kwargs['read_at'] == 'stop'
  proc = run_module('experiments.evaluate', '--workdir=/w',
                    '--eval_batch_size=0')
  assert proc.returncode == 1 and 'Traceback' not in proc.stderr
  assert '--eval_batch_size=0: 0 is not a positive integer' in proc.stderr
