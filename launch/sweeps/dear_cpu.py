"""The table of results/: the paper's sweep (``dear_paper.py``) with the
CPU-budget config ``experiments/configs/dear_cpu.py`` (5,000 steps)."""

import importlib.util
import pathlib

_HERE = pathlib.Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location('dear_paper_sweep',
                                               _HERE / 'dear_paper.py')
_paper = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_paper)


def get_sweep():
  return _paper.get_sweep(config=_HERE.parents[1] / 'experiments' / (
      'configs') / 'dear_cpu.py')
