"""The README's drop-in example runs as written and gives sane numbers."""

import contextlib
import io
import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / 'README.md'


def python_blocks(text: str) -> list[str]:
  return re.findall(r'```python\n(.*?)```', text, flags=re.S)


def test_readme_processor_factory_example_runs():
  blocks = python_blocks(README.read_text())
  example = next(b for b in blocks if 'get_processor_factory' in b)
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    exec(compile(example, str(README), 'exec'), {'__name__': '__readme__'})
  text = out.getvalue()
  score = float(re.search(r'micro-F1 at 64 nodes: ([0-9.]+)', text).group(1))
  assert 0.0 <= score <= 1.0
  graphs = int(re.search(r"'graphs': (\d+)", text).group(1))
  assert graphs == 8  # one solve per test graph, reported by the stats log
