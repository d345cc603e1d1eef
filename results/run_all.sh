#!/usr/bin/env bash
# Reproduces results/: DEAR against NAR on the 10 DEAR algorithms at the CPU
# budget of experiments/configs/cpu_budget.py, one run at a time on one core.
# Usage (from the repository root): bash results/run_all.sh [RUNS_DIR]
set -euo pipefail
RUNS=${1:-workdir_runs}
ALGS="binary_search minimum bfs bellman_ford insertion_sort mst_prim \
floyd_warshall dag_shortest_paths dfs strongly_connected_components"
export PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=1 \
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
mkdir -p "$RUNS"
for alg in $ALGS; do
  for model in dear nar; do
    # A finished run is skipped; an interrupted one resumes.
    [ -f "$RUNS/$alg/$model/results.json" ] && continue
    taskset -c 1 python -m experiments.train \
      --config=experiments/configs/cpu_budget.py \
      --algorithm="$alg" --model="$model" --seed=0 \
      --workdir="$RUNS/$alg/$model" 2>&1 | grep --line-buffered -v '^I0000\|^WARNING: All' \
      > "$RUNS/$alg.$model.log" || echo "FAILED: $alg $model" >&2
  done
done
python -m experiments.report --runs="$RUNS" --out=results
