"""experiments.config_files: a bad config file or field is named in one
line, before ml_collections loads it, and reading one imports no CLRS."""

import os
import subprocess
import sys

import pytest

from experiments import config_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
# The heavy imports reading a config file must not reach.
HEAVY = ('clrs', 'tensorflow', 'haiku', 'chex', 'tensorflow_datasets')


@pytest.mark.parametrize('config_file', ['default.py', 'dear_paper.py',
                                         'dear_cpu.py', 'test.py',
                                         'cpu_budget.py'])
def test_reading_a_config_file_imports_no_clrs(config_file):
  path = os.path.join(ROOT, 'experiments', 'configs', config_file)
  code = ('import sys\n'
          'from experiments import config_files\n'
          f'config_files.load_config_file({path!r})\n'
          f'print(sorted(set(sys.modules) & set({HEAVY!r})))\n')
  proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=ENV,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert proc.stdout.strip().splitlines()[-1] == '[]'


def test_config_file_problems_are_named_before_it_loads(tmp_path):
  problem = config_files.config_file_problem
  good = os.path.join(ROOT, 'experiments', 'configs', 'dear_cpu.py')
  assert problem(good) is None
  (tmp_path / 'syntax.py').write_text('def get_config(:\n  pass\n')
  assert problem(str(tmp_path / 'syntax.py')) == (
      'syntax error at line 1: invalid syntax')
  # Without get_config ml_collections raised AttributeError, which read as
  # an unknown --config.<field>.
  (tmp_path / 'empty.py').write_text('x = 1\n')
  assert 'defines no get_config()' in problem(
      str(tmp_path / 'empty.py'))
  (tmp_path / 'alias.py').write_text('from a import b as get_config\n')
  assert problem(str(tmp_path / 'alias.py')) is None
  assert problem(str(tmp_path)) == (
      'cannot read it (Is a directory)')
  # An argument the file's get_config cannot take, or one it needs and
  # lacks, ended in absl's multi-line FATAL message or a TypeError.
  assert problem(good, 'x') == (
      "its get_config() takes no argument, but the flag gives it 'x' (drop "
      "the \":x\")")
  (tmp_path / 'arg.py').write_text('def get_config(size):\n  pass\n')
  arg = str(tmp_path / 'arg.py')
  assert problem(arg, '64') is None
  assert problem(arg) == (
      f'its get_config() needs an argument (size): --config={arg}:<value>')
  (tmp_path / 'opt.py').write_text('def get_config(size=None):\n  pass\n')
  assert problem(str(tmp_path / 'opt.py')) is None
  assert problem(str(tmp_path / 'opt.py'), '8') is None
  # The last binding of get_config counts: a def rebound later is not it.
  (tmp_path / 'rebound.py').write_text(
      'def get_config():\n  pass\nget_config = lambda size: None\n')
  assert problem(str(tmp_path / 'rebound.py'), '8') is None
  assert config_files.given_file(['prog', '--config', 'a.py:x'], 'd.py') == (
      'a.py', 'x')
  assert config_files.given_file(['prog', '--', '--config=a.py'], 'd.py') == (
      'd.py', '')


def test_config_field_problems_name_the_valid_fields():
  from experiments.configs import default
  config = default.get_config()
  assert config_files.field_problem(config, 'deq.rel_tol') is None
  assert config_files.field_problem(config, 'hiden_size').startswith(
      'unknown config field --config.hiden_size (did you mean '
      '--config.hidden_size?); the fields of config are: algorithm, '
      'align.*, batch_size, cell.*,')
  assert 'config.seed is a value' in config_files.field_problem(
      config, 'seed.x')
  argv = ['train', '--config.seed=1', '--noconfig.tensorboard',
          '--config.cell.gate_bais=1']
  assert config_files.config_field_error(argv, os.path.join(
      ROOT, 'experiments', 'configs', 'default.py')).startswith(
          'unknown config field --config.cell.gate_bais (did you mean '
          '--config.cell.gate_bias?)')
