"""The absl entry points refuse bad flags with a message that says why."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_unknown_algorithm_is_refused_with_the_valid_names(tmp_path):
  env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL='3')
  proc = subprocess.run(
      [sys.executable, '-m', 'experiments.train', '--algorithm=bogosort',
       f'--workdir={tmp_path / "run"}', f'--data_dir={tmp_path / "data"}'],
      cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert proc.returncode != 0
  assert ("unknown algorithm 'bogosort'; valid CLRS-30 algorithms: "
          'activity_selector, articulation_points, bellman_ford, bfs'
          in proc.stderr), proc.stderr[-2000:]
  assert not (tmp_path / 'run').exists()  # refused before doing anything


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
    (['--model=dear', '--processor=triplet_mpnn'],
     '--model=dear needs an equilibrium processor'),
    (['--model=nar', '--processor=deq_mpnn'], 'only valid with --model=dear'),
    (['--model=hints'], "unknown model 'hints'"),
    (['--test_sizes=64,big'], '--test_sizes must be integers'),
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
