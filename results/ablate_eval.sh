#!/usr/bin/env bash
# Evaluation-only ablations of the table's finished dear runs: each run's
# selected checkpoint scored again at 64 nodes with other solver settings,
# one evaluation at a time on one CPU core, into
# results/dear_cpu/ablations/<run>.<setting>.json (files already there are
# kept). Then: python -m experiments.ablation_report
#   --files=results/dear_cpu/ablations --out=results/dear_cpu/ablations.md
#
#   CORE=0 SEEDS="0" ALGS="bellman_ford mst_prim" bash results/ablate_eval.sh
#
# RUNS (default /work/runs/dear_cpu) holds the workdirs; DATA (if set) the
# dataset cache; SEEDS and ALGS narrow the runs (default: all finished);
# OUT (default results/dear_cpu/ablations) receives the files; SETTINGS
# (default: the list in `defaults` below) picks the settings, e.g.
# SETTINGS=rel_tol0.001 ALGS="bfs insertion_sort". An unknown setting is
# refused before anything is scored.
set -uo pipefail
cd "$(dirname "$0")/.."
# glibc malloc setting of every job (launch/sweep.py ALLOCATOR_ENV), unless set.
malloc="${GLIBC_TUNABLES:-$(PYTHONPATH=. python -c \
  'from launch.sweep import ALLOCATOR_ENV as e; print(e["GLIBC_TUNABLES"])')}"
runs="${RUNS:-/work/runs/dear_cpu}"
out="${OUT:-results/dear_cpu/ablations}"
mkdir -p "$out"
data=()
[ -n "${DATA:-}" ] && data=(--data_dir="$DATA")
# setting name -> flags of experiments.evaluate
declare -A settings=(
  [default]=''
  [rel_tol0.01]='--rel_tol=0.01'
  [rel_tol0.001]='--rel_tol=0.001'
  [no_eval_noise]='--nonoise_in_eval'
  [phantom_in_eval]='--phantom_in_eval'
)
defaults="default rel_tol0.01 no_eval_noise phantom_in_eval"
chosen="${SETTINGS:-$defaults}"
for name in $chosen; do
  [ -n "${settings[$name]+set}" ] || { echo "unknown setting: $name" >&2; exit 2; }
done
for workdir in "$runs"/*-dear-s*; do
  run=$(basename "$workdir")
  alg=${run%-dear-s*}; seed=${run##*-s}
  [ -f "$workdir/results.json" ] || continue
  [ -n "${SEEDS:-}" ] && [[ " $SEEDS " != *" $seed "* ]] && continue
  [ -n "${ALGS:-}" ] && [[ " $ALGS " != *" $alg "* ]] && continue
  for name in $chosen; do
    file="$out/$run.$name.json"
    [ -f "$file" ] && continue
    echo "scoring $run with $name"
    # shellcheck disable=SC2086
    taskset -c "${CORE:-0}" env XLA_FLAGS=--xla_cpu_multi_thread_eigen=false \
      GLIBC_TUNABLES="$malloc" OMP_NUM_THREADS=1 PYTHONPATH=. python -m experiments.evaluate \
      --workdir="$workdir" --test_sizes=64 "${data[@]}" \
      ${settings[$name]} --output="$file" >"/tmp/ablate_eval.$run.$name.log" 2>&1 \
      || echo "failed: $run $name (see /tmp/ablate_eval.$run.$name.log)"
  done
done
