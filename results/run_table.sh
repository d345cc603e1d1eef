#!/usr/bin/env bash
# Runs (or resumes) the jobs of the results table on one CPU core: a thin
# wrapper around the sweep worker,
#
#   python -m launch.submit --sweep=launch/sweeps/dear_cpu.py \
#       --root=$RUNS --executor=worker --cpu=$CORE
#
# The sweep launch/sweeps/dear_cpu.py is the paper's protocol at 5,000 steps
# (10 algorithms x dear, nar, nar_lt x seeds 0-2) in the table's order (seed,
# then algorithm, then model) with its per-run overrides. Finished jobs
# (results.json present) are skipped, unfinished ones resume from their last
# checkpoint, and a job another worker holds (flock on its workdir) is left
# to it, so workers can be killed and restarted at any time:
#
#   CORE=1 bash results/run_table.sh            # one worker on core 1
#   CORE=0 bash results/run_table.sh &          # a second worker beside it
#
# RUNS (default /work/runs/dear_cpu) holds one workdir per job; DATA (if
# set) the dataset cache. SEEDS, MODELS and ALGS restrict the jobs, e.g.
#   SEEDS=0 MODELS="dear nar" ALGS="bfs dfs" bash results/run_table.sh
# DRY_RUN=1 prints the commands of the jobs left, in order. Runs whose
# report copies are in DONE (default results/dear_cpu/runs, the table's
# finished runs; DONE= turns this off) count as finished, so on a new
# machine, whose RUNS is empty, the worker does not train them again.
set -euo pipefail
cd "$(dirname "$0")/.."
done_dir="${DONE-results/dear_cpu/runs}"
args=(--sweep=launch/sweeps/dear_cpu.py --root="${RUNS:-/work/runs/dear_cpu}"
      --executor=worker --cpu="${CORE:-0}")
csv() { echo "$*" | tr -s ' ' ','; }
[ -n "${SEEDS:-}" ] && args+=(--only=seed="$(csv $SEEDS)")
[ -n "${MODELS:-}" ] && args+=(--only=model="$(csv $MODELS)")
[ -n "${ALGS:-}" ] && args+=(--only=algorithm="$(csv $ALGS)")
[ -n "${DATA:-}" ] && args+=(--set=data_dir="$DATA")
[ -n "$done_dir" ] && args+=(--done="$done_dir")
[ -n "${DRY_RUN:-}" ] && args+=(--dry_run)
PYTHONPATH=. exec python -m launch.submit "${args[@]}"
