#!/usr/bin/env bash
# Scores the finished dear and nar runs of the table, or of the ablation
# (RUNS=/work/runs/ablation: runs named <alg>-dear-<tag>-s<seed>), at larger
# test sizes (default 128 nodes), one run at a time on one CPU core, writing
# each run's eval_results.json (which experiments.report merges into its
# row). Runs already scored, unfinished runs and runs another process
# holds (flock on the workdir's .lock, as the sweep worker takes it) are
# skipped, so it can be rerun at any time:
#
#   CORE=0 bash results/eval_table.sh
#
# RUNS (default /work/runs/dear_cpu) holds the workdirs; DATA (if set) the
# dataset cache; SIZES the test sizes (default 128); EVAL_BATCH (if set) the
# graphs per evaluation call, for runs whose default batch does not fit in
# memory at that size (floyd_warshall at 128 nodes: EVAL_BATCH=5, with
# ALGS=floyd_warshall); ALGS (if set) the algorithms. nar_lt is left out: it
# runs up to 5N steps per graph (640 at 128 nodes), hours on one core.
set -uo pipefail
cd "$(dirname "$0")/.."
# glibc malloc setting of every job (launch/sweep.py ALLOCATOR_ENV), unless set.
malloc="${GLIBC_TUNABLES:-$(PYTHONPATH=. python -c \
  'from launch.sweep import ALLOCATOR_ENV as e; print(e["GLIBC_TUNABLES"])')}"
runs="${RUNS:-/work/runs/dear_cpu}"
args=(--test_sizes="${SIZES:-128}")
[ -n "${DATA:-}" ] && args+=(--data_dir="$DATA")
[ -n "${EVAL_BATCH:-}" ] && args+=(--eval_batch_size="$EVAL_BATCH")
for workdir in "$runs"/*-s[0-9]*; do
  [ -f "$workdir/results.json" ] || continue
  # <algorithm>-<model>[-<tag>]-s<seed>: neither part holds a dash.
  name=$(basename "$workdir"); alg=${name%%-*}; model=${name#*-}
  model=${model%%-*}
  [ "$model" = dear ] || [ "$model" = nar ] || continue
  [ -n "${ALGS:-}" ] && [[ " $ALGS " != *" $alg "* ]] && continue
  [ -f "$workdir/eval_results.json" ] && continue
  echo "scoring $workdir"
  # Exit 75 when another process holds the run; eval.log is opened only
  # once the lock is ours, so the holder's own log is left alone.
  (
    flock -n -E 75 9 || exit $?
    taskset -c "${CORE:-0}" env XLA_FLAGS=--xla_cpu_multi_thread_eigen=false \
      GLIBC_TUNABLES="$malloc" OMP_NUM_THREADS=1 PYTHONPATH=. python -m experiments.evaluate \
      --workdir="$workdir" "${args[@]}" >"$workdir/eval.log" 2>&1
  ) 9>>"$workdir/.lock"
  rc=$?
  case $rc in
    0) ;;
    75) echo "not scored: $workdir (another process holds it)";;
    137) echo "not scored: $workdir (killed, exit 137: most often out of" \
              "memory; try a smaller EVAL_BATCH)" | tee -a "$workdir/eval.log";;
    *) echo "not scored: $workdir (exit $rc; see $workdir/eval.log)";;
  esac
done
