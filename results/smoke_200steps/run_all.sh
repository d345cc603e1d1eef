#!/usr/bin/env bash
# Reproduces results/: DEAR against NAR on the 10 DEAR algorithms at the CPU
# budget of experiments/configs/cpu_budget.py, one run at a time on one core.
# Usage (from the repository root): bash results/run_all.sh [RUNS_DIR]
# ALGS and SEEDS (default: all 10 algorithms, seed 0) select a subset, e.g.
#   SEEDS=1 ALGS="mst_prim bfs" bash results/run_all.sh
set -euo pipefail
RUNS=${1:-workdir_runs}
ALGS=${ALGS:-"binary_search minimum bfs bellman_ford insertion_sort mst_prim \
floyd_warshall dag_shortest_paths dfs strongly_connected_components"}
SEEDS=${SEEDS:-0}
export PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=1 \
  TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 \
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
mkdir -p "$RUNS"
for seed in $SEEDS; do
  for alg in $ALGS; do
    for model in dear nar; do
      name=$model
      [ "$seed" != 0 ] && name="${model}_seed$seed"
      # A finished run is skipped; an interrupted one resumes.
      [ -f "$RUNS/$alg/$name/results.json" ] && continue
      taskset -c 1 python -m experiments.train \
        --config=experiments/configs/cpu_budget.py \
        --algorithm="$alg" --model="$model" --seed="$seed" \
        --workdir="$RUNS/$alg/$name" 2>&1 \
        | grep --line-buffered -v '^I0000\|^WARNING: All' \
        > "$RUNS/$alg.$name.log" || echo "FAILED: $alg $name" >&2
    done
  done
done
python -m experiments.report --runs="$RUNS" --out=results
