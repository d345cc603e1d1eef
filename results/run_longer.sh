#!/usr/bin/env bash
# Trains (or resumes) the runs of launch/sweeps/dear_longer.py, the table's
# DEAR run at 15,000 steps, on one CPU core, each in two legs:
#
#   1. to the table's 5,000 steps (the sweep worker with
#      --set=config.train_steps=5000); its results.json is then renamed
#      results.5000.json, the run at the table's budget (the worker takes a
#      run with a results.json for finished);
#   2. on to 15,000 from its own checkpoint (train_steps is a resumable
#      change; the best-by-validation parameters are in the checkpoint),
#      which writes results.json again.
#
# so both budgets are read off one trajectory (experiments.budget_report).
# A run whose results.5000.json exists skips leg 1; killed anywhere, rerun it
# and it resumes. Runs go one at a time in the sweep's order:
#
#   CORE=0 ALGS="strongly_connected_components" SEEDS=0 \
#       bash results/run_longer.sh
#
# RUNS (default /work/runs/longer) holds one folder per run; DATA (if set)
# the dataset cache; ALGS and SEEDS (default: all of the sweep's) narrow it.
# SWEEP (default launch/sweeps/dear_longer.py; a sweep file with SEEDS,
# ALGORITHMS and TAG) and SHORT (default 5000, the first leg's steps) are
# for tests.
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${RUNS:-/work/runs/longer}"
sweep="${SWEEP:-launch/sweeps/dear_longer.py}"
short="${SHORT:-5000}"
mapfile -t all < <(PYTHONPATH=. python -c "
import importlib.util
spec = importlib.util.spec_from_file_location('s', '$sweep')
s = importlib.util.module_from_spec(spec); spec.loader.exec_module(s)
for seed in s.SEEDS:
  for a in s.ALGORITHMS:
    print(seed, a, f'{a}-dear-{s.TAG}-s{seed}')")
worker() {  # seed algorithm [extra flags]
  local seed=$1 alg=$2
  shift 2
  local args=(--sweep="$sweep" --root="$runs" --executor=worker
              --cpu="${CORE:-0}" --only=seed="$seed" --only=algorithm="$alg")
  [ -n "${DATA:-}" ] && args+=(--set=data_dir="$DATA")
  PYTHONPATH=. python -m launch.submit "${args[@]}" "$@"
}
for line in "${all[@]}"; do
  read -r seed alg name <<<"$line"
  if [ -n "${SEEDS:-}" ] && [[ " $SEEDS " != *" $seed "* ]]; then continue; fi
  if [ -n "${ALGS:-}" ] && [[ " $ALGS " != *" $alg "* ]]; then continue; fi
  dir="$runs/$name"
  if [ ! -f "$dir/results.$short.json" ]; then
    worker "$seed" "$alg" --set=config.train_steps="$short"
    # Kept only if this leg finished the run at $short (another worker may
    # hold it).
    if python -c "import json,sys; sys.exit(json.load(open(sys.argv[1]))['train_steps'] != $short)" \
        "$dir/results.json" 2>/dev/null; then
      mv "$dir/results.json" "$dir/results.$short.json"
    else
      echo "$name: no $short-step results.json (held by another worker?)" >&2
      continue
    fi
  fi
  worker "$seed" "$alg"
done
