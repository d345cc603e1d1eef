#!/usr/bin/env bash
# Runs (or resumes) the jobs of the results table, one at a time on one CPU
# core: the sweep launch/sweeps/dear_cpu.py (the paper's protocol at 5,000
# steps; 10 algorithms x dear, nar, nar_lt x seeds 0-2), seed by seed, then
# algorithm by algorithm, then model by model (dear, nar, nar_lt), so that
# finished work always holds whole comparisons.
#
#   CORE=1 bash results/run_table.sh            # one worker on core 1
#   CORE=0 bash results/run_table.sh &          # a second worker beside it
#
# Finished jobs (results.json present) are skipped, unfinished ones resume
# from their last checkpoint, and a job another worker holds (flock on its
# workdir) is left to it, so workers can be killed and restarted at any time.
# RUNS (default /work/runs/dear_cpu) holds one workdir per job; DATA the
# dataset cache. SEEDS, MODELS and ALGS restrict the jobs, e.g.
#   SEEDS=0 MODELS="dear nar" ALGS="bfs dfs" bash results/run_table.sh
set -uo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-/work/runs/dear_cpu}
DATA=${DATA:-~/.cache/deq_clrs/data}
CORE=${CORE:-0}
SEEDS=${SEEDS:-"0 1 2"}
MODELS=${MODELS:-"dear nar nar_lt"}
ALGS=${ALGS:-"bfs bellman_ford dag_shortest_paths floyd_warshall mst_prim \
dfs strongly_connected_components minimum binary_search insertion_sort"}
export PYTHONPATH=. TF_CPP_MIN_LOG_LEVEL=3 OMP_NUM_THREADS=1 \
  XLA_FLAGS=--xla_cpu_multi_thread_eigen=false
mkdir -p "$RUNS"
for seed in $SEEDS; do
  for alg in $ALGS; do
    for model in $MODELS; do
      workdir="$RUNS/$alg-$model-s$seed"
      [ -f "$workdir/results.json" ] && continue
      mkdir -p "$workdir"
      # nar_lt scores its test set (up to 5N steps per graph) only at the end.
      extra=()
      [ "$model" = nar_lt ] && extra=(--config.test_every=0)
      flock -n "$workdir/.lock" taskset -c "$CORE" python -m experiments.train \
        --config=experiments/configs/dear_cpu.py --algorithm="$alg" \
        --model="$model" --seed="$seed" --data_dir="$DATA" \
        --config.tensorboard=False "${extra[@]}" --workdir="$workdir" \
        >> "$workdir/job.log" 2>&1 \
        || echo "$(date -Is) not finished: $workdir (see job.log)" >&2
    done
  done
done
