"""Tests of the workdir's records (the learning curve after a kill)."""

import json

from deq_clrs.training import workdir as workdir_lib


def test_a_history_cut_short_by_a_kill_resumes_from_its_checkpoint(
    tmp_path):
  path = tmp_path / workdir_lib.HISTORY_FILE
  whole = [{'step': s, 'val_score': s / 10} for s in (0, 2, 4, 6)]
  text = ''.join(json.dumps(e) + '\n' for e in whole)
  # Killed while writing step 6's line, after the checkpoint at step 4.
  path.write_text(text[:-7])
  history = workdir_lib.History(str(tmp_path), resume_step=4)
  assert history.entries == whole[:3]
  # The torn line is gone from the file, so the next entry is its own line.
  history.append({'step': 6, 'val_score': 0.7})
  lines = path.read_text().splitlines()
  assert [json.loads(line) for line in lines] == whole[:3] + [
      {'step': 6, 'val_score': 0.7}]
  # Entries past the checkpoint are dropped even when they are whole.
  path.write_text(text)
  assert workdir_lib.History(str(tmp_path), resume_step=2).entries == whole[:2]
  assert len(path.read_text().splitlines()) == 2
