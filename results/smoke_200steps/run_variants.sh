#!/usr/bin/env bash
# What we tried where DEAR lags: the same DEAR runs as run_all.sh with the
# stricter relative tolerance 0.01 (DEAR's strict config) instead of 0.1,
# tagged "tol0.01" in the report. Run after run_all.sh, same budget.
# Usage (from the repository root): bash results/run_variants.sh [RUNS_DIR]
set -euo pipefail
RUNS=${1:-workdir_runs}
ALGS=${ALGS:-"mst_prim insertion_sort bellman_ford binary_search \
floyd_warshall dfs dag_shortest_paths strongly_connected_components bfs \
minimum"}
export PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=1 \
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
for alg in $ALGS; do
  dir="$RUNS/$alg/dear_tol0.01"
  [ -f "$dir/results.json" ] && continue
  taskset -c 1 python -m experiments.train \
    --config=experiments/configs/cpu_budget.py --config.tag=tol0.01 \
    --algorithm="$alg" --model=dear --seed=0 --rel_tol=0.01 \
    --workdir="$dir" 2>&1 | grep --line-buffered -v '^I0000\|^WARNING: All' \
    > "$RUNS/$alg.dear_tol0.01.log" || echo "FAILED: $alg" >&2
done
python -m experiments.report --runs="$RUNS" --out=results
